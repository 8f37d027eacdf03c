"""Spare worktrees (activities/worktree_spares.py): a landed task's worktree is kept and reset
for the next task, which then starts from exactly the tracked files of its base, as in a new
worktree; tampered or half-made spares are never used; the sweep removes them."""

from __future__ import annotations

import fcntl
import os
import socket
import stat
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

import activities.worktree_spares as worktree_spares
import activities.worktrees as worktrees_module
from activities.command_specialist import CommandSpecialistActivities
from activities.conflicts import CONFLICT_RECORD
from activities.worktree_add import register_worktree
from activities.worktree_git import admin_dir, git_waiting
from activities.worktree_spares import SPARE, spares_dir
from coordinator.branches import (
    FIX_PREFIX,
    LandResult,
    PendingWorkRequest,
    TaskWorktree,
    task_branch,
    worktree_beside,
)
from coordinator.plan import Gate
from coordinator.work import FollowThrough, SpecialistRequest
from tests.activities.test_worktree_prepare import request as first_attempt
from tests.activities.worktree_support import (
    BRANCH,
    EXECUTION,
    FILES,
    Execution,
    git,
    landing,
    merge_request,
    run,
    scratch_execution,
    spare_worktrees,
    task_worktrees,
    write,
)


@pytest.fixture(autouse=True)
def spares_of_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scratch repository has three files: kept all the same (`MIN_FILES`)."""
    monkeypatch.setattr(worktree_spares, "MIN_FILES", 0)


@pytest.fixture
def thrown_away(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The places of the spares found unfit after their reset, as they are set aside (a
    folder made anew may get the inode number of one just deleted: no test by inodes)."""
    thrown: list[Path] = []

    def spy(clone: Path, worktree: Path) -> tuple[Path, Path | None]:
        thrown.append(worktree)
        return worktree_spares.set_aside(clone, worktree)

    monkeypatch.setattr(worktrees_module, "set_aside_spare", spy)
    return thrown


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The spares' folders moved into a task's place, as they are registered there."""
    moved: list[Path] = []
    real = register_worktree

    async def spy(*args: Any, folder: Path | None = None, **kwargs: Any) -> None:
        if folder is not None:
            moved.append(folder)
        await real(*args, folder=folder, **kwargs)

    monkeypatch.setattr(worktree_spares, "register_worktree", spy)
    return moved


async def land(ex: Execution, wt: TaskWorktree, task_id: str) -> LandResult:
    result: LandResult = await run(ex.acts.land_task, landing(ex, wt, task_id))
    assert result.merged is not None and result.merged.merged and result.removed, result
    return result


async def landed_spare(ex: Execution, task_id: str, files: dict[str, str]) -> Path:
    """A task made, changed and landed: the folder it leaves as a spare."""
    wt = await ex.create(task_id)
    write(wt, files)
    await land(ex, wt, task_id)
    (spare,) = spare_worktrees(ex)
    return spare


def assert_as_new(ex: Execution, wt: TaskWorktree, task_id: str) -> None:
    """The worktree is what a new one would be: on its branch at the execution head, every
    tracked file as committed, nothing else (not even ignored files), unlocked, no records."""
    path = Path(wt.path)
    assert wt.base_commit == ex.head()
    assert git(path, "symbolic-ref", "HEAD") == f"refs/heads/{task_branch(EXECUTION, task_id)}"
    assert git(path, "rev-parse", "HEAD") == ex.head()
    assert git(path, "status", "--porcelain", "--ignored", "--untracked-files=all") == ""
    tracked = set(git(path, "ls-files").splitlines())
    on_disk = {
        str(Path(root, name).relative_to(path))
        for root, dirs, names in os.walk(path)
        for name in names + [d for d in dirs if os.path.islink(Path(root, d))]
        if ".git" not in Path(root, name).relative_to(path).parts
    }
    assert on_disk == tracked
    for name in tracked:
        committed = subprocess.run(
            ["git", "show", f"HEAD:{name}"], cwd=path, capture_output=True, check=True
        ).stdout
        assert (path / name).read_bytes() == committed, name
    assert path.name == task_id and not (admin_dir(path) / "locked").exists()
    assert not (admin_dir(path) / CONFLICT_RECORD).exists()
    assert path in [p.resolve() for p in task_worktrees(ex)]


async def test_the_next_task_gets_a_landed_worktree_reset_to_its_base(
    ex: Execution, taken: list[Path]
) -> None:
    spare = await landed_spare(ex, "t1", {"a.txt": "a\n", "debug.log": "ignored\n"})
    inode = spare.stat().st_ino
    # What the last task (or anything after its commit) may leave behind.
    (spare / "app.py").write_text("print('HI')\n")  # tracked, changed, same size
    (spare / "shared.txt").unlink()  # tracked, deleted
    (spare / "build" / "deep").mkdir(parents=True)
    (spare / "build" / "deep" / "out.bin").write_bytes(b"\0" * 10)  # untracked
    (spare / "__pycache__").mkdir()
    (spare / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"x")  # ignored cache
    (spare / "link").symlink_to("/etc")
    (admin_dir(spare) / CONFLICT_RECORD).write_text("{}")  # the old registration's record

    wt = await ex.create("t2")

    assert taken == [spare] and Path(wt.path).stat().st_ino == inode  # the same folder
    assert not spare.exists() and spare_worktrees(ex) == []
    assert_as_new(ex, wt, "t2")
    assert (Path(wt.path) / "a.txt").read_text() == "a\n"  # t1's landed work is the base


async def test_spares_go_round_a_chain_of_tasks(
    ex: Execution, taken: list[Path], thrown_away: list[Path]
) -> None:
    for n in range(4):
        wt = await ex.create(f"t{n}")
        assert_as_new(ex, wt, f"t{n}")
        write(wt, {f"f{n}.txt": f"{n}\n", "shared.txt": f"{n}\n"})
        await land(ex, wt, f"t{n}")
        assert len(spare_worktrees(ex)) == 1 and task_worktrees(ex) == []
    assert ex.subjects() == [f"t{n}: do t{n}" for n in range(4)]
    assert git(ex.clone, "show", "HEAD:shared.txt") == "3"
    assert len(taken) == 3 and thrown_away == []  # t1, t2, t3 each in the one before's


async def test_at_most_max_spares_are_kept(ex: Execution, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worktree_spares, "MAX_SPARES", 2)
    wts = [await ex.create(f"t{n}") for n in range(3)]
    for n, wt in enumerate(wts):
        write(wt, {f"f{n}.txt": f"{n}\n"})
        await land(ex, wt, f"t{n}")
    assert len(spare_worktrees(ex)) == 2 and task_worktrees(ex) == []
    assert len(list(spares_dir(Path(wts[0].path)).iterdir())) == 2
    assert not any(Path(wt.path).exists() for wt in wts)


async def test_a_fix_worktree_is_not_kept(ex: Execution) -> None:
    fix = f"{FIX_PREFIX}validation-x-1"
    wt = await ex.create(fix)
    write(wt, {"fixed.txt": "fixed\n"})
    await land(ex, wt, fix)
    assert spare_worktrees(ex) == [] and task_worktrees(ex) == []
    assert not Path(wt.path).exists()


@pytest.mark.parametrize(
    "tamper", ["elsewhere", "link", "folder", "unlocked", "unregistered", "registration link"]
)
async def test_a_spare_that_is_not_exactly_one_is_deleted_not_used(
    ex: Execution, tmp_path: Path, tamper: str, taken: list[Path]
) -> None:
    """A spare's folder and registration must name each other, its `.git` a plain file and
    its lock a spare's: anything else (tampering, or a crash while it was kept) is deleted
    when seen, and the task gets a new worktree."""
    spare = await landed_spare(ex, "t1", {"a.txt": "a\n"})
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me\n")
    admin = admin_dir(spare)
    if tamper == "elsewhere":
        (spare / ".git").write_text(f"gitdir: {ex.clone / '.git'}\n")
    elif tamper == "link":
        (spare / ".git").unlink()
        (spare / ".git").symlink_to(outside)
    elif tamper == "folder":
        # As a crash after the folder moved leaves it: the registration names the old place.
        (admin / "gitdir").write_text(f"{ex.root / EXECUTION / 'worktrees' / 't1' / '.git'}\n")
    elif tamper == "unlocked":
        (admin / "locked").unlink()
    elif tamper == "registration link":  # its index is never moved out of somewhere else
        moved = tmp_path / "registration"
        admin.rename(moved)
        admin.symlink_to(moved)
    else:
        (spare / ".git").write_text(f"gitdir: {admin.parent / 'nothing'}\n")

    wt = await ex.create("t2")

    assert taken == [] and not spare.exists()
    assert_as_new(ex, wt, "t2")
    assert outside.read_text() == "keep me\n"
    await sweep(ex)


async def test_a_take_cut_short_before_the_files_are_reset_is_made_again(
    ex: Execution, monkeypatch: pytest.MonkeyPatch
) -> None:
    await landed_spare(ex, "t1", {"a.txt": "a\n", "debug.log": "ignored\n"})
    real = worktrees_module._check_out

    async def crash(path: Path, made: str) -> bool:
        raise RuntimeError("worker died")

    monkeypatch.setattr(worktrees_module, "_check_out", crash)
    with pytest.raises(RuntimeError, match="worker died"):
        await ex.create("t2")
    half = ex.root / EXECUTION / "worktrees" / "t2"
    assert (half / "debug.log").exists()  # the spare's files, not yet reset
    assert (admin_dir(half) / "locked").read_text() == "initializing"
    monkeypatch.setattr(worktrees_module, "_check_out", real)

    wt = await ex.create("t2")

    assert_as_new(ex, wt, "t2")
    await sweep(ex)


async def test_a_take_cut_short_before_the_registration_loses_only_the_spare(
    ex: Execution, monkeypatch: pytest.MonkeyPatch
) -> None:
    spare = await landed_spare(ex, "t1", {"a.txt": "a\n"})

    async def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("worker died")

    monkeypatch.setattr(worktree_spares, "register_worktree", crash)
    with pytest.raises(RuntimeError, match="worker died"):
        await ex.create("t2")
    monkeypatch.undo()
    assert spare.exists() and spare_worktrees(ex) == []  # unregistered: never taken

    wt = await ex.create("t2")

    assert not spare.exists()
    assert_as_new(ex, wt, "t2")
    await sweep(ex)


async def test_the_sweep_removes_the_spares(ex: Execution) -> None:
    busy = await ex.create("busy")
    write(busy, {"half.txt": "half\n"})
    await landed_spare(ex, "t1", {"a.txt": "a\n"})
    await sweep(ex)
    assert not Path(busy.path).exists()


async def sweep(ex: Execution) -> None:
    """The end of the implementation phase: no worktree, no spare, nothing to prune."""
    request = PendingWorkRequest(
        workspace=str(ex.clone), execution_id=EXECUTION, execution_branch=BRANCH
    )
    await run(ex.acts.commit_pending_work, request)
    assert git(ex.clone, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(ex.clone, "worktree", "prune", "--dry-run", "--verbose") == ""
    assert not (ex.root / EXECUTION / "spare-worktrees").exists()
    assert SPARE not in git(ex.clone, "worktree", "list", "--porcelain")


async def test_a_spare_whose_index_git_cannot_read_is_not_used(
    ex: Execution, taken: list[Path], thrown_away: list[Path]
) -> None:
    spare = await landed_spare(ex, "t1", {"a.txt": "a\n", "debug.log": "ignored\n"})
    (admin_dir(spare) / "index").write_bytes(b"DIRC\0\0\0\2broken")

    wt = await ex.create("t2")

    assert taken == [spare] and thrown_away == [Path(wt.path)]
    assert_as_new(ex, wt, "t2")
    await sweep(ex)


def deep_folder(base: Path, levels: int = 30) -> None:
    """A folder path longer than PATH_MAX (4,096 bytes), made a level at a time."""
    fd = os.open(base, os.O_RDONLY)
    try:
        for _ in range(levels):
            os.mkdir("x" * 200, dir_fd=fd)
            deeper = os.open("x" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = deeper
    finally:
        os.close(fd)


def nested_repository(folder: Path, marker: Path) -> None:
    """A repository at `folder/.git` whose configuration runs a command (`core.fsmonitor`)
    for any git started below it."""
    git(folder.parent, "init", "-q", str(folder))
    config = folder / ".git" / "config"
    config.write_text(config.read_text() + f"\tfsmonitor = touch {marker}; false\n")


LEFTOVERS = [
    "nested .git",
    "gitfile",
    "fifo",
    "socket",
    "hardlink",
    "file mode",
    "folder mode",
    "deep folder",
]


@pytest.mark.parametrize("leftover", LEFTOVERS)
async def test_what_git_would_leave_in_a_spare_makes_a_new_worktree(
    tmp_path: Path, leftover: str, taken: list[Path], thrown_away: list[Path]
) -> None:
    """What `git reset --hard` and `git clean -ffdx` leave (found in review): the spare is
    thrown away and the task gets a new worktree, as it would have without spares."""
    files = {**FILES, "pkg/mod.py": "x = 1\n", "pkg/copy.py": "x = 1\n"}
    ex = await scratch_execution(tmp_path / "x", files)
    wt1 = await ex.create("t1")
    if leftover == "hardlink":  # two tracked files, one inode, committed: unchanged to git
        (Path(wt1.path) / "pkg" / "copy.py").unlink()
        os.link(Path(wt1.path) / "pkg" / "mod.py", Path(wt1.path) / "pkg" / "copy.py")
    write(wt1, {"a.txt": "a\n"})
    await land(ex, wt1, "t1")
    (spare,) = spare_worktrees(ex)
    marker = tmp_path / "ran"
    if leftover == "nested .git":  # inside a folder with tracked files: git never looks
        (spare / "pkg" / "inner").mkdir()
        nested_repository(spare / "pkg" / "inner", marker)
        (spare / "pkg" / "inner" / ".git").rename(spare / "pkg" / ".git")
    elif leftover == "gitfile":
        (spare / "pkg" / ".git").write_text(f"gitdir: {ex.clone / '.git'}\n")
    elif leftover == "fifo":
        os.mkfifo(spare / "pkg" / ".coverage")
    elif leftover == "socket":
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(spare / "sock.log"))
    elif leftover == "hardlink":
        assert (spare / "pkg" / "copy.py").stat().st_nlink == 2
    elif leftover == "file mode":
        (spare / "app.py").chmod(0o600)
    elif leftover == "folder mode":
        (spare / "pkg").chmod(0o700)
    else:
        (spare / "deep.log").mkdir()
        deep_folder(spare / "deep.log")

    wt = await ex.create("t2")

    assert taken == [spare] and thrown_away == [Path(wt.path)]  # then a new worktree
    assert_as_new(ex, wt, "t2")
    assert not (Path(wt.path) / "pkg" / ".git").exists()
    subprocess.run(["git", "status"], cwd=Path(wt.path) / "pkg", capture_output=True)
    assert not marker.exists()
    await sweep(ex)
    assert not (ex.root / EXECUTION / "discarded-worktrees").exists()


async def test_a_submodule_in_the_base_means_no_spares(ex: Execution) -> None:
    """Once the execution branch has a submodule (`git submodule add`, where commands run
    unjailed), no worktree is kept and no spare is taken: a reset leaves what a task did
    inside a submodule."""
    wt0 = await ex.create("t0")
    spare = await landed_spare(ex, "t1", {"lib.log/x": "ignored\n"})
    upstream = ex.root / "upstream"
    nested_repository(upstream, ex.root / "unused")
    (upstream / "c").write_text("c\n")
    git(upstream, "add", "-A")
    git(upstream, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    git(
        wt0.path, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(upstream), "lib"
    )
    await land(ex, wt0, "t0")
    assert "160000 commit" in git(ex.clone, "ls-tree", "HEAD", "lib")
    assert spare_worktrees(ex) == [spare]  # t0's own was not kept

    wt = await ex.create("t2")

    assert spare_worktrees(ex) == [spare]  # not taken
    assert list((Path(wt.path) / "lib").iterdir()) == []  # as a new worktree has it
    await sweep(ex)


async def test_a_worktree_of_few_files_is_not_kept(
    ex: Execution, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below MIN_FILES tracked files a new worktree costs no more than a reset."""
    monkeypatch.setattr(worktree_spares, "MIN_FILES", 5)
    wt = await ex.create("t1")
    write(wt, {"a.txt": "a\n"})
    await land(ex, wt, "t1")  # four files: not kept
    assert spare_worktrees(ex) == [] and not Path(wt.path).exists()
    wt = await ex.create("t2")
    write(wt, {"b.txt": "b\n"})
    await land(ex, wt, "t2")  # five
    assert len(spare_worktrees(ex)) == 1


async def test_bytes_a_filter_hid_from_the_index_make_a_new_worktree(
    ex: Execution, taken: list[Path], thrown_away: list[Path]
) -> None:
    """An earlier task's own (ignored) `.gitattributes` makes `git add -A` index content that
    is not on disk (`ident`): git's stat check then calls the file unchanged. The bytes are
    compared with the blobs: a new worktree (found in review)."""
    wt1 = await ex.create("t1")
    pkg = Path(wt1.path) / "pkg"
    write(
        wt1,
        {"pkg/.gitignore": ".gitignore\n.gitattributes\n", "pkg/.gitattributes": "*.py ident\n"},
    )
    payload = pkg / "mod.py"
    payload.write_text('"$Id: "; print("payload"); "$"\n')
    os.utime(payload, (1_000_000_000, 1_000_000_000))  # not "racily clean" for git
    await land(ex, wt1, "t1")
    assert git(ex.clone, "show", "HEAD:pkg/mod.py") == '"$Id$"'  # the payload is not there
    (spare,) = spare_worktrees(ex)

    wt = await ex.create("t2")

    assert taken == [spare] and thrown_away == [Path(wt.path)]
    assert_as_new(ex, wt, "t2")


@pytest.mark.parametrize("planted", ["fifo", "eol"])
async def test_an_earlier_tasks_attributes_never_apply_to_the_reset(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    taken: list[Path],
    thrown_away: list[Path],
    planted: str,
) -> None:
    """A `.gitattributes` left in a spare never applies to the files the reset writes (those
    another task changed meanwhile): an ignored file is cleaned away before, and a spare
    with a named pipe, which git would wait on for ever, is not reset at all (found in
    review)."""
    monkeypatch.setattr(worktrees_module, "SPARE_RESET", 10.0)
    real_git = git_waiting
    resets: list[Path] = []

    async def git_spy(*args: str, cwd: Path, **kwargs: Any) -> str:
        if args[:1] == ("reset",):
            resets.append(cwd)
        return await real_git(*args, cwd=cwd, **kwargs)

    ex = await scratch_execution(tmp_path / "x", {**FILES, "pkg/mod.py": "x = 1\n"})
    other = await ex.create("t0")
    wt1 = await ex.create("a1")  # its spare is the first taken
    write(wt1, {"a.txt": "a\n"})
    await land(ex, wt1, "a1")
    (spare,) = spare_worktrees(ex)
    # What the task left beside its commit (`git add -A` skips a pipe, and an ignored file).
    attributes = spare / "pkg" / ".gitattributes"
    if planted == "fifo":
        os.mkfifo(attributes)
    else:
        attributes.write_text("* text eol=crlf\n")
    write(other, {"pkg/mod.py": "x = 2\n"})
    await land(ex, other, "t0")

    monkeypatch.setattr(worktrees_module, "git_waiting", git_spy)
    wt = await ex.create("t2")

    # A pipe: not reset at all (git would wait on it); a file: cleaned away first.
    assert taken == [spare] and thrown_away == ([Path(wt.path)] if planted == "fifo" else [])
    assert resets == ([] if planted == "fifo" else [Path(wt.path)])
    assert (Path(wt.path) / "pkg" / "mod.py").read_bytes() == b"x = 2\n"
    assert_as_new(ex, wt, "t2")


async def test_a_spare_whose_own_folder_mode_changed_makes_a_new_worktree(
    ex: Execution, taken: list[Path], thrown_away: list[Path]
) -> None:
    spare = await landed_spare(ex, "t1", {"a.txt": "a\n"})
    spare.chmod(0o777)

    wt = await ex.create("t2")

    assert taken == [spare] and thrown_away == [Path(wt.path)]
    assert_as_new(ex, wt, "t2")
    assert stat.S_IMODE(Path(wt.path).stat().st_mode) == 0o755


def set_default_acl(folder: Path) -> None:
    """A default ACL giving every file made in `folder` rw for all (it overrides the umask)."""
    undefined = 0xFFFFFFFF
    entries = [(1, 6, undefined), (4, 6, undefined), (0x10, 6, undefined), (0x20, 6, undefined)]
    value = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    os.setxattr(folder, "system.posix_acl_default", value)


@pytest.mark.parametrize("planted", ["default ACL", "access ACL", "sync flag"])
async def test_acls_and_inode_flags_make_a_new_worktree(
    ex: Execution, taken: list[Path], thrown_away: list[Path], planted: str
) -> None:
    """Not in the mode bits, not seen by git, but they change what a later task's files
    are (found in review): a new worktree."""
    spare = await landed_spare(ex, "t1", {"pkg/mod.py": "x = 1\n"})
    try:
        if planted == "default ACL":
            set_default_acl(spare / "pkg")
        elif planted == "access ACL":
            value = struct.pack("<I", 2) + b"".join(
                struct.pack("<HHI", tag, 6, 0xFFFFFFFF) for tag in (1, 4, 0x20)
            )
            os.setxattr(spare / "app.py", "system.posix_acl_access", value)
        else:
            fd = os.open(spare / "pkg", os.O_RDONLY | os.O_DIRECTORY)
            try:
                fcntl.ioctl(fd, 0x40086602, struct.pack("i", 0x8 | 0x80000))  # +S
            finally:
                os.close(fd)
    except OSError as err:
        pytest.skip(f"this file system has no {planted}: {err}")

    wt = await ex.create("t2")

    assert taken == [spare]
    if planted != "access ACL":  # a file's ACL: git may also have written the file anew
        assert thrown_away == [Path(wt.path)]
    assert_as_new(ex, wt, "t2")
    assert os.listxattr(Path(wt.path) / "pkg") == os.listxattr(Path(wt.path) / "app.py") == []


async def test_attributes_that_change_bytes_on_checkout_mean_no_spares(ex: Execution) -> None:
    """With a `.gitattributes` in the branch (eol, ident, filters), a new worktree's files
    differ from their blobs: spares would always be found unfit, or pass with the blob's
    bytes where a new worktree has others (found in review). None are kept."""
    wt = await ex.create("t1")
    write(wt, {".gitattributes": "*.bat text eol=crlf\n", "run.bat": "echo hi\n"})
    await land(ex, wt, "t1")
    assert spare_worktrees(ex) == []
    wt = await ex.create("t2")
    assert (Path(wt.path) / "run.bat").read_bytes() == b"echo hi\r\n"


def turn_of(ex: Execution, task_id: str, command: str, gates: list[str]) -> SpecialistRequest:
    """A task's whole turn as the workflow sends it: its worktree made by the activity, the
    command, its gates, the landing (activities/task_turn.py)."""
    request = first_attempt(ex, command, fresh=True)
    return request.model_copy(
        update={
            "task_id": task_id,
            "task_title": task_id,
            "cwd": worktree_beside(ex.workspace.path, task_id),
            "worktree": request.worktree.model_copy(update={"task_id": task_id})
            if request.worktree
            else None,
            "then": FollowThrough(
                gates=[Gate(name=f"g{n}", run=run) for n, run in enumerate(gates)],
                merge=merge_request(ex, task_id),
            ),
        }
    )


async def test_a_task_turn_takes_the_spare_its_predecessor_left(
    ex: Execution, tmp_path: Path, taken: list[Path]
) -> None:
    """The path the workflow takes (one activity: worktree, specialist, gate, landing): the
    second task works in the first one's folder, without what the first left behind."""
    acts = CommandSpecialistActivities(tmp_path / "artifacts", ex.acts)
    leaves = "echo 1 > one.txt; mkdir cache; echo x > debug.log"
    first = await ActivityEnvironment().run(acts.run, turn_of(ex, "t1", leaves, []))
    assert first.ok and first.landed and first.landed.removed, first.output_tail
    (spare,) = spare_worktrees(ex)

    clean = "test -f one.txt && test ! -e debug.log && test ! -e cache"
    second = await ActivityEnvironment().run(acts.run, turn_of(ex, "t2", "true", [clean]))

    assert taken == [spare]
    assert second.ok and second.gates is not None and all(g.passed for g in second.gates)
    assert second.landed is not None and second.landed.removed
    assert ex.subjects() == ["t1: do t1"]  # t2 changed nothing
    await sweep(ex)
