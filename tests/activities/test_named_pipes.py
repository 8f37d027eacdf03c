"""A named pipe left by a plan's command where git opens files (`.gitignore`,
`.gitattributes`, a nested repository's `HEAD`...): git waits for a writer for ever. coord
removes every named pipe after each plan command and before its own git walks a worktree
(activities/named_pipes.py), so the commit, a fix attempt, a fresh retry, a merge go on.
Without that, each step below would wait out git's 30-minute timeout (some of them in a
section that cannot be cancelled): a watchdog opens the pipes for writing after a minute,
for steps that take well under a second, which lets git go on and fails the test."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from temporalio.testing import ActivityEnvironment

from activities.environment import EnvironmentActivities
from activities.gates import GateActivities
from activities.named_pipes import remove_named_pipes
from coordinator.environment import CommandEnvironment
from coordinator.execution import SetupCommandRequest
from coordinator.plan import Gate, SetupCommand
from coordinator.work import GateRequest
from tests.activities.worktree_support import Execution, git, write

LIMIT_S = 60.0


@contextlib.asynccontextmanager
async def watchdog(*pipes: Path) -> AsyncIterator[list[Path]]:
    """After LIMIT_S, opens for writing whichever of `pipes` git waits on (which lets it
    read an empty file and go on); yields the list of those it had to open. A thread, not a
    task: what waits may be the event loop itself (an in-process checkout)."""
    opened: list[Path] = []
    done = threading.Event()

    def watch() -> None:
        if done.wait(LIMIT_S):
            return
        while not done.is_set():
            for pipe in pipes:
                with contextlib.suppress(OSError):  # gone, or nobody waiting on it yet
                    os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
                    opened.append(pipe)
            done.wait(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield opened
    finally:
        done.set()
        thread.join()


def test_every_named_pipe_goes_and_links_git_would_follow_to_one(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    nested = tmp_path / "vendor" / "lib" / ".git"
    (nested / "refs" / "heads").mkdir(parents=True)
    deep.mkdir(parents=True)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    os.mkfifo(outside)
    for pipe in (tmp_path / ".gitignore", deep / ".gitattributes", deep / "p", nested / "HEAD"):
        os.mkfifo(pipe)
    (tmp_path / "a" / ".gitignore").write_text("*.log\n")
    (tmp_path / ".gitmodules").symlink_to(outside)  # git follows this one
    (nested / "refs" / "heads" / "main").symlink_to(outside)  # and these
    (nested / "config").write_text("")
    (nested / "packed-refs").symlink_to(nested / "config")  # a file: as git would read it
    (tmp_path / "a" / "b" / ".gitignore").symlink_to(outside)  # not followed by git
    (tmp_path / "null").symlink_to("/dev/null")  # committed as a link, never followed
    with socket.socket(socket.AF_UNIX) as sock:  # open() fails at once: git warns, goes on
        sock.bind(str(tmp_path / "a" / "b" / ".gitattributes"))
        removed = remove_named_pipes(tmp_path)

    assert removed == [
        ".gitignore",
        ".gitmodules",
        "a/b/c/.gitattributes",
        "a/b/c/p",
        "vendor/lib/.git/HEAD",
        "vendor/lib/.git/refs/heads/main",
    ]
    for path in removed:
        assert not (tmp_path / path).exists() and not (tmp_path / path).is_symlink()
    assert (tmp_path / "a" / ".gitignore").read_text() == "*.log\n"
    assert (tmp_path / "a" / "b" / ".gitignore").is_symlink()
    assert (tmp_path / "null").is_symlink() and (nested / "packed-refs").is_symlink()
    assert (tmp_path / "a" / "b" / ".gitattributes").exists()
    assert outside.exists()  # never anything outside
    assert remove_named_pipes(tmp_path) == []


def test_a_pipe_in_a_read_only_folder_is_removed_too(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    os.mkfifo(folder / ".gitignore")
    folder.chmod(0o555)
    assert remove_named_pipes(tmp_path) == ["locked/.gitignore"]
    assert not (folder / ".gitignore").exists()


def test_a_missing_folder_and_paths_beyond_git_s_reach(tmp_path: Path) -> None:
    assert remove_named_pipes(tmp_path / "gone") == []
    # Deeper than any path git can name (4,096 bytes): passed over, as git passes it over.
    os.mkfifo(tmp_path / "near")
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        for _ in range(45):
            os.mkdir("d" * 100, dir_fd=fd)
            inner = os.open("d" * 100, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.mkfifo("far", dir_fd=fd)
    finally:
        os.close(fd)
    assert remove_named_pipes(tmp_path) == ["near"]


async def test_the_commit_goes_on_past_pipes_where_git_reads_rules(ex: Execution) -> None:
    wt = await ex.create("t1")
    write(wt, {"a.txt": "a\n", "sub/b.txt": "b\n"})
    pipes = (Path(wt.path) / "sub" / ".gitignore", Path(wt.path) / ".gitattributes")
    for pipe in pipes:
        os.mkfifo(pipe)

    async with watchdog(*pipes) as waited_on:
        result = await ex.commit(wt, "t1")
    assert waited_on == []

    assert result.commit is not None
    assert sorted(result.files_changed) == ["a.txt", "sub/b.txt"]
    tree = git(wt.path, "ls-tree", "-r", "--name-only", result.commit).split()
    assert tree == [".gitignore", "a.txt", "app.py", "shared.txt", "sub/b.txt"]


async def test_a_fix_attempt_goes_on_past_them(ex: Execution) -> None:
    wt = await ex.create("t1")
    write(wt, {"draft.txt": "attempt 1\n"})
    assert (await ex.commit(wt, "t1")).commit is not None  # its gates fail afterwards
    pipe = Path(wt.path) / ".gitattributes"
    os.mkfifo(pipe)
    await ex.land("other", {"other.txt": "other\n"})  # the fix attempt replays onto it

    async with watchdog(pipe) as waited_on:
        fix = await ex.create("t1", attempt=2)
    assert waited_on == []
    assert fix.replayed and (Path(fix.path) / "draft.txt").read_text() == "attempt 1\n"
    assert (Path(fix.path) / "other.txt").exists()


async def test_a_fresh_retry_goes_on_past_them(ex: Execution) -> None:
    wt = await ex.create("t1")
    write(wt, {"draft.txt": "attempt 1\n"})
    await ex.land("other", {"other.txt": "other\n"})
    (Path(wt.path) / "sub").mkdir()
    pipe = Path(wt.path) / "sub" / ".gitignore"  # read by the clean of a fresh start
    os.mkfifo(pipe)
    async with watchdog(pipe) as waited_on:
        fresh = await ex.create("t1", attempt=1, fresh=True)
    assert waited_on == []
    assert fresh.base_commit == ex.head() and not (Path(fresh.path) / "draft.txt").exists()


async def test_a_setup_command_in_the_clone_goes_on_past_them(ex: Execution) -> None:
    """Setup commands run in the execution's clone, whose state git then reads."""
    request = SetupCommandRequest(
        execution_id="e1",
        command=SetupCommand(name="deps", run="mkdir -p cache && mkfifo cache/.gitignore"),
        cwd=str(ex.clone),
        round=1,
        environment=CommandEnvironment(confine="off"),
    )
    setup = EnvironmentActivities(ex.root / "artifacts", ex.root)
    async with watchdog(ex.clone / "cache" / ".gitignore") as waited_on:
        result = await ActivityEnvironment().run(setup.run_setup_command, request)
    assert waited_on == []
    assert result.name == "deps" and not (ex.clone / "cache" / ".gitignore").exists()


async def test_a_gate_in_the_clone_leaves_no_pipe_for_the_next_merge(ex: Execution) -> None:
    """Layer and validation gates run in the execution's clone; the merges that follow move
    its checkout in-process (libgit2), which would freeze the worker on such a pipe."""
    gate = GateRequest(
        execution_id="e1",
        level="layer",
        scope="L1",
        gate=Gate(name="lint", run="mkdir -p sub && mkfifo sub/.gitattributes"),
        cwd=str(ex.clone),
        attempt=1,
        environment=CommandEnvironment(confine="off"),
    )
    result = await ActivityEnvironment().run(GateActivities(ex.root / "art").run_gate, gate)
    assert result.passed
    pipe = ex.clone / "sub" / ".gitattributes"
    async with watchdog(pipe) as waited_on:
        await ex.land("t1", {"sub/new.txt": "new\n"})
    assert waited_on == [] and not pipe.exists()
    assert (ex.clone / "sub" / "new.txt").read_text() == "new\n"


async def test_a_nested_repository_with_a_pipe_for_its_head(ex: Execution) -> None:
    wt = await ex.create("t1")
    write(wt, {"vendor/lib/lib.py": "x = 1\n", "vendor/lib/.git/config": ""})
    (Path(wt.path) / "vendor" / "lib" / ".git" / "refs").mkdir()
    head = Path(wt.path) / "vendor" / "lib" / ".git" / "HEAD"
    os.mkfifo(head)
    async with watchdog(head) as waited_on:
        result = await ex.commit(wt, "t1")
    assert waited_on == []
    # Without its HEAD the folder is no repository to git: its files land, `.git` never does.
    assert result.commit is not None and result.files_changed == ["vendor/lib/lib.py"]


async def test_a_worktree_whose_folder_is_gone_is_made_again(ex: Execution) -> None:
    wt = await ex.create("t1")
    shutil.rmtree(wt.path)
    again = await ex.create("t1", attempt=2)
    assert again.path == wt.path and (Path(again.path) / "app.py").exists()
