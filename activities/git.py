"""Running git from activities: bounded, with a fixed identity, errors that say what failed."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

# Commits made by the coordinator must work on hosts without a git identity configured.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "coord",
    "GIT_AUTHOR_EMAIL": "coord@localhost",
    "GIT_COMMITTER_NAME": "coord",
    "GIT_COMMITTER_EMAIL": "coord@localhost",
    "GIT_TERMINAL_PROMPT": "0",
}

# A git lock file younger than this may belong to a git that is still starting up.
STALE_LOCK_AGE = 5.0

_LOCK_EXISTS = re.compile(r"Unable to create '([^']+\.lock)': File exists")


class GitError(RuntimeError):
    def __init__(self, args: list[str], cwd: Path | None, returncode: int, output: str) -> None:
        self.returncode = returncode
        self.output = output
        where = f" in {cwd}" if cwd else ""
        super().__init__(
            f"git {' '.join(args)}{where} failed ({returncode}): {output.strip()[-2000:]}"
        )


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: str
    stderr: str


async def run_git(
    *args: str,
    cwd: Path | None = None,
    timeout: float = 300,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
) -> GitResult:
    """Run git and return its exit code and output, whatever the exit code. `env` adds to
    the worker's environment for this one command (credentials that must not be stored)."""
    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **GIT_IDENTITY, **(env or {})},
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(None if stdin is None else stdin.encode()), timeout
        )
    except (TimeoutError, asyncio.CancelledError):
        proc.kill()
        await proc.wait()
        raise
    return GitResult(
        proc.returncode if proc.returncode is not None else -1,
        out.decode(errors="replace").strip(),
        err.decode(errors="replace"),
    )


async def git(
    *args: str,
    cwd: Path | None = None,
    timeout: float = 300,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run git and return its stdout; raise GitError with stderr on failure."""
    result = await run_git(*args, cwd=cwd, timeout=timeout, stdin=stdin, env=env)
    if result.returncode != 0:
        raise GitError(list(args), cwd, result.returncode or -1, result.stderr or result.stdout)
    return result.stdout


async def is_git_repo(path: Path) -> bool:
    try:
        top = await git("rev-parse", "--show-toplevel", cwd=path)
    except (GitError, FileNotFoundError, NotADirectoryError):
        return False
    return Path(top).resolve() == path.resolve()


def lock_in_the_way(err: GitError) -> Path | None:
    """The lock file a git command failed on ("Unable to create '...lock': File exists")."""
    found = _LOCK_EXISTS.search(err.output)
    return Path(found.group(1)) if found else None


def remove_stale_lock(lock: Path, min_age: float = STALE_LOCK_AGE) -> bool:
    """Remove a lock file left by a git that died (crash, kill); True when it is gone.

    A live git holds its lock file open, so a lock that is a few seconds old and open in no
    process is stale. Without /proc (not Linux) only a much older lock counts as stale.
    """
    try:
        before = lock.stat()
    except FileNotFoundError:
        return True
    held = _held_open(lock)
    if held is None:
        held, min_age = False, max(min_age, 60.0)
    if held or time.time() - before.st_mtime < min_age:
        return False
    try:
        # While the lock exists no git can take it, so an unchanged inode is the stale one.
        if lock.stat().st_ino == before.st_ino:
            lock.unlink()
    except FileNotFoundError:
        pass
    return True


def _held_open(path: Path) -> bool | None:
    """Whether any process (of ours) has `path` open; None when /proc cannot tell."""
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return None
    target = os.path.realpath(path)
    for fd_dir in proc.glob("[0-9]*/fd"):
        try:
            fds = list(fd_dir.iterdir())
        except OSError:
            continue  # gone, or another user's process
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    return True
            except OSError:
                continue
    return False


@asynccontextmanager
async def repo_lock(repo: Path, poll: float = 0.05) -> AsyncIterator[None]:
    """Hold an exclusive flock on a repository (shared by all its worktrees) for the block.

    flock is per open file, so it also excludes other coroutines of this worker; the kernel
    drops it when a worker dies, so a crash never leaves the repository locked.
    """
    common = await git("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=repo)
    fd = os.open(Path(common) / "coord.flock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(poll)
        yield
    finally:
        os.close(fd)
