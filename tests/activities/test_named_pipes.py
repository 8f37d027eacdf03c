"""A named pipe left by a plan's command where git opens files (`.gitignore`,
`.gitattributes`, a nested repository's `HEAD`...): git waits for a writer for ever. coord
removes every named pipe after each plan command and before its own git walks a worktree
(activities/named_pipes.py), so the commit, a fix attempt, a fresh retry, a merge go on.
Without that, each step below would wait out git's 30-minute timeout (some of them in a
section that cannot be cancelled): a watchdog opens the pipes for writing after a minute,
for steps that take well under a second, which lets git go on and fails the test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import stat
import tempfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.command_runner import CommandSpec, command_context, run_command
from activities.command_specialist import CommandSpecialistActivities
from activities.environment import EnvironmentActivities
from activities.gates import GateActivities
from activities.named_pipes import remove_named_pipes
from activities.task_turn import take_turn
from coordinator.environment import CommandEnvironment
from coordinator.execution import SetupCommandRequest
from coordinator.plan import Gate, SetupCommand
from coordinator.work import FollowThrough, GateRequest, SpecialistRequest, SpecialistResult
from tests.activities.test_worktree_prepare import request as first_attempt
from tests.activities.worktree_support import Execution, git, merge_request, write

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
    (nested / "packed-refs").symlink_to(nested / "config")  # any link in there: git follows
    (tmp_path / "a" / ".git").symlink_to(outside.parent)  # a nested `.git` that is a link
    own = tmp_path / ".git"  # the folder's own: the jail cannot write there, never walked
    own.mkdir()
    os.mkfifo(own / "pipe")
    (tmp_path / "a" / "b" / ".gitignore").symlink_to(outside)  # not followed by git
    (tmp_path / "null").symlink_to("/dev/null")  # committed as a link, never followed
    with socket.socket(socket.AF_UNIX) as sock:  # open() fails at once: git warns, goes on
        sock.bind(str(tmp_path / "a" / "b" / ".gitattributes"))
        removed = remove_named_pipes(tmp_path)

    assert removed == [
        ".gitignore",
        ".gitmodules",
        "a/.git",
        "a/b/c/.gitattributes",
        "a/b/c/p",
        "vendor/lib/.git/HEAD",
        "vendor/lib/.git/packed-refs",
        "vendor/lib/.git/refs/heads/main",
    ]
    for path in removed:
        assert not (tmp_path / path).exists() and not (tmp_path / path).is_symlink()
    assert (tmp_path / "a" / ".gitignore").read_text() == "*.log\n"
    assert (tmp_path / "a" / "b" / ".gitignore").is_symlink()
    assert (tmp_path / "null").is_symlink() and (own / "pipe").exists()
    assert (tmp_path / "a" / "b" / ".gitattributes").exists()
    assert outside.exists()  # never anything outside
    assert remove_named_pipes(tmp_path) == []


NOBODY = 65534


def swept_as_nobody(folder: Path) -> list[str]:
    """`remove_named_pipes(folder)` as the process's own user when that is not root, else in
    a child turned into user `nobody` (for root, permissions deny nothing)."""
    if os.geteuid() != 0:
        return remove_named_pipes(folder)
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # only the sweep, then out: no pytest, no interpreter exit
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(write, json.dumps(remove_named_pipes(folder)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as said:
        answer = said.read()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, answer
    removed: list[str] = json.loads(answer)
    return removed


def test_folders_that_deny_their_owner_are_swept_too() -> None:
    """A pipe in a folder that denies removing it (r-x) or listing it (-wx, as git still
    opens a rule file there by name): the folder is given its owner's permissions."""
    folder = Path(tempfile.mkdtemp(prefix="coord-pipes-"))  # where `nobody` can reach it
    try:
        for name, mode in (("read-only", 0o555), ("unlisted", 0o311)):
            (folder / name).mkdir()
            (folder / name / "kept.txt").write_text("x\n")
            os.mkfifo(folder / name / ".gitignore")
            (folder / name).chmod(mode)
        assert swept_as_nobody(folder) == ["read-only/.gitignore", "unlisted/.gitignore"]
        for name in ("read-only", "unlisted"):
            assert not (folder / name / ".gitignore").exists()
            assert (folder / name / "kept.txt").read_text() == "x\n"
            assert stat.S_IMODE((folder / name).stat().st_mode) & 0o700 == 0o700
    finally:
        shutil.rmtree(folder)


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


def test_the_log_says_what_left_them_and_quotes_their_names(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    os.mkfifo(tmp_path / "new\nline")
    with caplog.at_level(logging.WARNING, logger="activities.named_pipes"):
        assert remove_named_pipes(tmp_path, "gate 'lint'") == ["new\nline"]
    [message] = caplog.messages
    assert "left by gate 'lint': 'new\\nline'" in message and "\n" not in message


async def test_a_linked_rule_file_in_the_clone_is_left_to_git(ex: Execution) -> None:
    """libgit2 follows a `.gitattributes` link (git does not): the in-process checkout of a
    merge leaves such a clone to git, which never opens the pipe at its end."""
    outside = ex.root / "env-pipe"
    os.mkfifo(outside)
    (ex.clone / "sub").mkdir()
    (ex.clone / "sub" / ".gitattributes").symlink_to(outside)
    async with watchdog(outside) as waited_on:
        await ex.land("t1", {"sub/new.txt": "new\n"})
    assert waited_on == []
    assert (ex.clone / "sub" / "new.txt").read_text() == "new\n"


async def test_the_first_gate_after_an_agent_that_left_a_pipe(
    ex: Execution, tmp_path: Path
) -> None:
    """Agents (Claude Code, the API's bash tool) run outside the command runner: their turn
    sweeps after them, so a gate running git in the worktree does not wait on the pipe."""
    acts = CommandSpecialistActivities(tmp_path / "artifacts", ex.acts)

    async def leaves_a_pipe(request: SpecialistRequest) -> SpecialistResult:
        plain = {"backend": "command", "worktree": None, "then": None}  # made already
        result = await acts.run(request.model_copy(update=plain))
        os.mkfifo(Path(request.cwd) / ".gitattributes")
        return result

    request = first_attempt(ex, "echo x > x.txt", fresh=True).model_copy(
        update={
            "backend": "claude-code",
            "then": FollowThrough(
                gates=[Gate(name="check", run="git diff --check", timeout=30)],
                merge=merge_request(ex, "t1"),
            ),
        }
    )
    result = await ActivityEnvironment().run(
        take_turn, ex.acts, tmp_path / "artifacts", request, leaves_a_pipe
    )
    assert [(g.name, g.passed, g.timed_out) for g in result.gates or []] == [("check", True, False)]
    assert result.landed is not None and result.landed.merged is not None


async def test_a_cancelled_command_s_pipes_go_too(tmp_path: Path) -> None:
    spec = CommandSpec(
        what="gate 'slow'",
        command="mkfifo .gitignore && sleep 60",
        cwd=tmp_path,
        environment=CommandEnvironment(confine="off"),
        timeout=120,
        log_path=tmp_path / "logs" / "slow.log",
        slot=tmp_path / "logs" / ".processes" / "slow",
        not_started="GateNotStarted",
    )
    running = asyncio.create_task(run_command(spec, command_context(spec)))
    while not (tmp_path / ".gitignore").exists():  # the command got that far
        assert not running.done()
        await asyncio.sleep(0.05)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert not (tmp_path / ".gitignore").exists()
