"""The check of a reset spare worktree (activities/spare_check.py), against real git: a file
that passed is not read again while its inode and change time say it is unchanged, and any
change to it (bytes, mode, its place) makes it read again and caught."""

from __future__ import annotations

import mmap
import os
import subprocess
import time
from pathlib import Path

import pytest

import activities.running_commands as running_commands
import activities.spare_check as spare_check
from activities.running_commands import counted
from activities.spare_check import VerifiedFiles, exactly_tracked
from tests.activities.worktree_support import git

FILES = {f"src/m{k}.py": f"x = {k}\n" * 50 for k in range(20)} | {"README.md": "hello\n"}


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    for name, text in FILES.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo.parent, "init", "-q", str(repo))
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    return repo


class Checker:
    """`exactly_tracked` with a memory of its own, counting the files each check hashed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hashed: list[int] = []
        blob_id = spare_check._blob_id

        def counting(fd: int, size: int) -> bytes:
            self.hashed[-1] += 1
            return blob_id(fd, size)

        monkeypatch.setattr(spare_check, "_blob_id", counting)
        monkeypatch.setattr(spare_check, "VERIFIED", VerifiedFiles())
        # Nothing else counted as running (another test's may linger).
        monkeypatch.setattr(running_commands, "_running", {})
        monkeypatch.setattr(running_commands, "_lingering", {})

    def __call__(self, worktree: Path) -> bool:
        self.hashed.append(0)
        return exactly_tracked(worktree)


@pytest.fixture
def check(monkeypatch: pytest.MonkeyPatch) -> Checker:
    return Checker(monkeypatch)


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written a moment ago count as settled (no waiting out the racy window)."""
    monkeypatch.setattr(spare_check, "RACY_NS", 0)


@pytest.mark.usefixtures("settled")
def test_a_file_unchanged_since_it_passed_is_not_read_again(checkout: Path, check: Checker) -> None:
    assert check(checkout) and check(checkout)
    assert check.hashed == [len(FILES), 0]


@pytest.mark.usefixtures("settled")
def test_other_bytes_under_the_same_size_and_time_are_caught(
    checkout: Path, check: Checker
) -> None:
    assert check(checkout)
    target = checkout / "src/m3.py"
    before = target.stat()
    target.write_text(FILES["src/m3.py"].replace("3", "4"))  # the same size
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the same mtime
    assert target.stat().st_size == before.st_size
    assert not check(checkout)


@pytest.mark.usefixtures("settled")
def test_a_mode_changed_and_back_reads_the_file_again(checkout: Path, check: Checker) -> None:
    assert check(checkout)
    target = checkout / "README.md"
    mode = target.stat().st_mode
    target.chmod(0o600)
    target.chmod(mode)
    assert check(checkout)
    assert check.hashed == [len(FILES), 1]


@pytest.mark.usefixtures("settled")
def test_a_file_that_passed_is_checked_again_in_another_place(
    checkout: Path, check: Checker
) -> None:
    """Moved over another tracked file of the same size: the place says which blob."""
    assert check(checkout)
    os.replace(checkout / "src/m3.py", checkout / "src/m4.py")
    (checkout / "src/m3.py").write_text(FILES["src/m3.py"])
    assert not check(checkout)


def test_a_file_changed_within_the_racy_window_is_read_every_time(
    checkout: Path, check: Checker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files changed less than RACY_NS before a check are not remembered by it: a file
    system's clock could give a later change the same ctime. (A window of a day here, so
    that a slow machine cannot age the files out of it.)"""
    monkeypatch.setattr(spare_check, "RACY_NS", 86_400 * 10**9)
    assert check(checkout) and check(checkout)
    assert check.hashed == [len(FILES), len(FILES)]


def test_the_memory_is_forgotten_whole_past_its_limit() -> None:
    verified = VerifiedFiles(limit=2)
    infos = [os.stat(path) for path in ("/", "/usr", "/etc")]
    for info in infos:
        verified.add(info, b"blob")
    assert verified.holds(infos[2], b"blob")
    assert not verified.holds(infos[0], b"blob") and not verified.holds(infos[1], b"blob")
    assert not verified.holds(infos[2], b"another blob")


@pytest.mark.usefixtures("settled")
def test_the_real_check_uses_the_memory(checkout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The module's own check and memory (only what other tests left running is cleared):
    a clean checkout passes twice, and the files that passed are remembered."""
    monkeypatch.setattr(running_commands, "_running", {})
    monkeypatch.setattr(running_commands, "_lingering", {})
    readme = checkout / "README.md"
    blob = bytes.fromhex(git(checkout, "rev-parse", "HEAD:README.md"))
    assert exactly_tracked(checkout) and exactly_tracked(checkout)
    assert spare_check.VERIFIED.holds(os.lstat(readme), blob)


def test_a_name_that_is_not_utf8_is_matched_as_the_file_system_names_it(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    git(tmp_path, "init", "-q", str(repo))
    (repo / os.fsdecode(b"caf\xe9.txt")).write_text("latin-1 name\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    assert exactly_tracked(repo)


def test_an_unmerged_index_is_not_a_spare(checkout: Path) -> None:
    blob = git(checkout, "rev-parse", "HEAD:README.md")
    entries = f"0 {'0' * 40}\tREADME.md\n100644 {blob} 1\tREADME.md\n"
    subprocess.run(
        ["git", "update-index", "--index-info"], cwd=checkout, input=entries, text=True, check=True
    )
    assert "1\tREADME.md" in git(checkout, "ls-files", "--stage")
    assert not exactly_tracked(checkout)


@pytest.mark.usefixtures("settled")
def test_a_remembered_file_is_hashed_again_where_the_index_wants_other_bytes(
    checkout: Path, check: Checker
) -> None:
    """The same file, unchanged, under an index entry for another blob: the blob is part of
    what is remembered."""
    assert check(checkout)
    other = git(checkout, "rev-parse", "HEAD:src/m4.py")
    git(checkout, "update-index", "--cacheinfo", f"100644,{other},src/m3.py")
    assert not check(checkout)
    assert check.hashed[-1] >= 1


def test_a_file_a_running_command_maps_for_writing_is_never_remembered(
    checkout: Path, check: Checker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that holds a file mapped for writing changes its bytes without a new ctime
    once its first write set one: a file changed since a command still running started is
    hashed at every check, so bytes written later through the mapping are caught."""
    monkeypatch.setattr(spare_check, "RACY_NS", 50_000_000)  # more than a clock tick
    target = checkout / "src/m3.py"
    with counted(), target.open("r+b") as file:  # another task's command, running
        mapped = mmap.mmap(file.fileno(), 0)
        mapped[0:1] = mapped[0:1]  # the first write: a new ctime, the same bytes
        time.sleep(0.2)  # older than RACY_NS by the check: only the running command counts
        assert check(checkout)  # a spare taken meanwhile: the file passes, not remembered
        ctime = target.stat().st_ctime_ns
        mapped[0:9] = b"tampered "  # no new ctime for this one
        mapped.close()
    assert target.stat().st_ctime_ns == ctime  # what makes it dangerous
    assert not check(checkout)
