"""Running git from activities: bounded, with a fixed identity, errors that say what failed.

Every git the coordinator runs is started the same way (`run_git`): with hooks and the
file-system monitor switched off, so no program a specialist planted in the clone (its hooks
folder, its `.git/config`) runs inside the coordinator; and with an environment of its own
that holds what git needs (PATH, HOME, locale, proxies, ssh agent) and none of the worker's
secrets (`GITHUB_TOKEN`, `ANTHROPIC_API_KEY`, ...). The GitHub token reaches one push at a
time through activities/git_credentials.py, never through the environment.

Also here: where a repository's git folders are (`open_repository`, `git_dir`, `common_dir`),
found in-process with libgit2, which runs no hooks and no program named in any config.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pygit2

from coordinator.environment import is_secret_name

# Commits made by the coordinator must work on hosts without a git identity configured.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "coord",
    "GIT_AUTHOR_EMAIL": "coord@localhost",
    "GIT_COMMITTER_NAME": "coord",
    "GIT_COMMITTER_EMAIL": "coord@localhost",
    "GIT_TERMINAL_PROMPT": "0",
}

# What git may take from the worker's environment: what it needs to run, find its own
# configuration and reach a network. Everything else (API keys, tokens, GIT_DIR and the like,
# GIT_TRACE_* that would log request headers) stays out.
GIT_ENV_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "XDG_CONFIG_HOME",
        "SSH_AUTH_SOCK",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_SSH_VARIANT",
        "GIT_EXEC_PATH",
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_SYSTEM",
        "GIT_CONFIG_NOSYSTEM",
        "GIT_SSL_CAINFO",
        "GIT_SSL_CAPATH",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
    }
)
GIT_ENV_PREFIXES = ("LC_",)
# Given before every git command's own arguments. Hooks: /dev/null rather than an empty
# folder, since nothing can ever be put in it. The file-system monitor is a command too.
# `git log` reads the worktree's `.mailmap` whole, however large; coord never shows names.
SAFE_CONFIG = (
    *("-c", "core.hooksPath=/dev/null"),
    *("-c", "core.fsmonitor=false"),
    *("-c", "log.mailmap=false"),
)

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


def git_env(
    extra: Mapping[str, str] | None = None, *, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a git the coordinator runs: the names git needs from the worker's
    environment (or `base`), the coordinator's identity, then `extra`. git's messages are
    in English whatever the worker's locale: the coordinator reads them (a lock in the way,
    a repository without a commit), so `LC_ALL` only sets the character type."""
    source = os.environ if base is None else base
    env = {
        name: value
        for name, value in source.items()
        if (name in GIT_ENV_NAMES or name.startswith(GIT_ENV_PREFIXES)) and not is_secret_name(name)
    }
    if every := env.pop("LC_ALL", None):
        env.setdefault("LC_CTYPE", every)
    env["LC_MESSAGES"] = "C"  # and gettext ignores LANGUAGE then
    return {**env, **GIT_IDENTITY, **(extra or {})}


async def run_git(
    *args: str,
    cwd: Path | None = None,
    timeout: float = 300,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    started: Callable[[int], None] | None = None,
) -> GitResult:
    """Run git and return its exit code and output, whatever the exit code. `env` adds to
    git's own environment (`git_env`) for this one command; `started` is told its pid."""
    proc = await asyncio.create_subprocess_exec(
        "git",
        *SAFE_CONFIG,
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=git_env(env),
        start_new_session=True,
    )
    if started is not None:
        started(proc.pid)
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


async def is_repository(path: Path) -> bool:
    """A repository to clone: the top of a working tree, or a git directory itself (a bare
    repository, which has no working tree, so `is_git_repo` says no; or a `.git` folder).
    A folder inside either is neither."""
    if await is_git_repo(path):
        return True
    try:
        # Named explicitly: no discovery upwards, whatever safe.bareRepository says.
        await git(f"--git-dir={path}", "rev-parse", "--git-dir", cwd=path)
    except (GitError, FileNotFoundError, NotADirectoryError):
        return False
    return True


def open_repository(cwd: Path) -> pygit2.Repository:
    """The repository (or worktree) at or above `cwd`, as `git -C cwd` would find it.

    A clone opened on the event loop's thread is kept open for the next call (libgit2 reads
    refs and objects from disk on every lookup; opening costs ~0.2 ms, a task's landing asks
    about 25 times): never a worktree (they come and go), nor a copy for another thread.
    A kept one is used only while its HEAD file is the same file, unchanged (a clone made
    again at the same place, or whose HEAD was rewritten, is opened anew)."""
    key = str(cwd)
    keep = threading.current_thread() is threading.main_thread()
    if keep and (kept := _kept.get(key)) is not None:
        repo, stamp = kept
        if _head_stamp(repo) == stamp:
            return repo
        del _kept[key]
    try:
        repo = pygit2.Repository(key)
    except (pygit2.GitError, KeyError, OSError) as err:
        message = f"not a git repository: {err}"
        raise GitError(["rev-parse", "--git-dir"], cwd, 128, message) from err
    clone = not repo.is_bare and not os.path.exists(os.path.join(repo.path, "commondir"))
    # Only the clone at this very path (not a repository found above a folder that lost its
    # own .git, which a later worktree made there would then be taken for).
    clone = clone and repo.workdir is not None and _same_folder(repo.workdir, key)
    if keep and clone and _KEEP_AT_MOST and (opened := _head_stamp(repo)) is not None:
        while len(_kept) >= _KEEP_AT_MOST:
            _kept.pop(next(iter(_kept)))  # the one kept longest
        _kept[key] = (repo, opened)
    return repo


# Clones kept open by `open_repository`: path -> (repository, `_head_stamp` when opened).
_kept: dict[str, tuple[pygit2.Repository, tuple[int, int]]] = {}
_KEEP_AT_MOST = 64


def _same_folder(one: str, other: str) -> bool:
    try:
        return os.path.samefile(one, other)
    except OSError:
        return False


def _head_stamp(repo: pygit2.Repository) -> tuple[int, int] | None:
    """Which HEAD file the repository has, as it is: (inode, modification time in ns)."""
    try:
        found = os.stat(os.path.join(repo.path, "HEAD"))
    except OSError:
        return None
    return found.st_ino, found.st_mtime_ns


def git_dir(cwd: Path) -> Path:
    """The repository's (or worktree's own) git folder, absolute (`--absolute-git-dir`)."""
    return Path(open_repository(cwd).path).absolute()


def common_dir(cwd: Path) -> Path:
    """The git folder all worktrees of the repository share (`--git-common-dir`), absolute."""
    return shared_git_dir(git_dir(cwd))


def shared_git_dir(own: Path) -> Path:
    """The common git folder of the repository whose own git folder is `own`: itself for a
    clone, the one its `commondir` file names for a linked worktree."""
    pointer = own / "commondir"  # a worktree's git folder names the shared one
    if pointer.is_file():
        return (own / pointer.read_text().strip()).absolute()
    return own


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
async def repo_lock(
    repo: Path, poll: float = 0.05, first_poll: float = 0.002
) -> AsyncIterator[None]:
    """Hold an exclusive flock on a repository (shared by all its worktrees) for the block.

    The kernel drops a flock when a worker dies, so a crash never leaves the repository
    locked. Coroutines of this worker first queue on an asyncio lock of the repository's
    own: the lock passes from one to the next at once, in order. Waiting on the flock alone
    (tried again after `first_poll`, then twice as long each time up to `poll`) handed it on
    up to 50 ms late, which made eight parallel tasks' worktrees take turns 45 ms apart;
    that back-off is left to another worker process holding the same repository.
    """
    folder = common_dir(repo)
    async with _local_lock(folder):
        fd = os.open(folder / "coord.flock", os.O_RDWR | os.O_CREAT, 0o644)
        wait = min(first_poll, poll)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(wait)
                    wait = min(wait * 2, poll)
            yield
        finally:
            os.close(fd)


# The asyncio locks of `repo_lock`, per event loop and repository, while anyone holds one.
_LOCAL_LOCKS: weakref.WeakValueDictionary[tuple[int, str], asyncio.Lock] = (
    weakref.WeakValueDictionary()
)


def _local_lock(folder: Path) -> asyncio.Lock:
    key = (id(asyncio.get_running_loop()), str(folder))
    lock = _LOCAL_LOCKS.get(key)
    if lock is None:
        lock = _LOCAL_LOCKS[key] = asyncio.Lock()
    return lock
