"""A named pipe called `.gitignore` or `.gitattributes` left by a specialist: git opens it
and waits for a writer for ever. coord removes such pipes before its own git walks the
worktree (activities/rule_pipes.py), so the commit, a fix attempt and a fresh retry go on.
Without that, each step below would wait out git's 30-minute timeout (some of them in a
section that cannot be cancelled): a watchdog opens the pipes for writing after a minute,
for steps that take well under a second, which lets git go on and fails the test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from temporalio.testing import ActivityEnvironment

from activities.environment import EnvironmentActivities
from activities.rule_pipes import remove_rule_pipes
from coordinator.environment import CommandEnvironment
from coordinator.execution import SetupCommandRequest
from coordinator.plan import SetupCommand
from tests.activities.worktree_support import Execution, git, write

LIMIT_S = 60.0


@contextlib.asynccontextmanager
async def watchdog(*pipes: Path) -> AsyncIterator[list[Path]]:
    """After LIMIT_S, opens for writing whichever of `pipes` git waits on (which lets it
    read an empty file and go on); yields the list of those it had to open."""
    opened: list[Path] = []

    async def watch() -> None:
        await asyncio.sleep(LIMIT_S)
        while True:
            for pipe in pipes:
                with contextlib.suppress(OSError):  # gone, or nobody waiting on it yet
                    os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
                    opened.append(pipe)
            await asyncio.sleep(0.2)

    task = asyncio.create_task(watch())
    try:
        yield opened
    finally:
        task.cancel()


def test_only_named_pipes_called_like_git_rule_files_are_removed(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    os.mkfifo(tmp_path / ".gitignore")
    os.mkfifo(deep / ".gitattributes")
    os.mkfifo(deep / ".gitmodules")  # read once the index has a submodule link
    os.mkfifo(tmp_path / "a" / "pipe")  # git skips a pipe it is not asked to read
    (tmp_path / "a" / ".gitignore").write_text("*.log\n")
    os.mkfifo(tmp_path / "outside")
    (tmp_path / "a" / "b" / ".gitignore").symlink_to(tmp_path / "outside")  # not followed
    with socket.socket(socket.AF_UNIX) as sock:  # open() fails at once: git warns, goes on
        sock.bind(str(tmp_path / "a" / "b" / ".gitattributes"))
        removed = remove_rule_pipes(tmp_path)

    assert removed == [".gitignore", "a/b/c/.gitattributes", "a/b/c/.gitmodules"]
    assert not (tmp_path / ".gitignore").exists()
    assert not (deep / ".gitattributes").exists()
    assert (tmp_path / "a" / "pipe").exists()
    assert (tmp_path / "a" / ".gitignore").read_text() == "*.log\n"
    assert (tmp_path / "a" / "b" / ".gitignore").is_symlink()
    assert (tmp_path / "a" / "b" / ".gitattributes").exists()
    assert remove_rule_pipes(tmp_path) == []


def test_a_pipe_in_a_read_only_folder_is_removed_too(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    os.mkfifo(folder / ".gitignore")
    folder.chmod(0o555)
    assert remove_rule_pipes(tmp_path) == ["locked/.gitignore"]
    assert not (folder / ".gitignore").exists()


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
