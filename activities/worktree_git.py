"""The git steps under the task worktrees (activities/worktrees.py, activities/worktree_merge.py):
git that waits out a busy lock, git failures as Temporal sees them, refs, the recorded base of
a task branch, the list of worktrees, removing a worktree, and a `--stat` clipped to size."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.conflicts import (
    Merged,
)
from activities.git import (
    GitError,
    common_dir,
    git,
    git_dir,
    is_git_repo,
    lock_in_the_way,
    remove_stale_lock,
    run_git,
)
from activities.git_merge import disjoint_merge, might_have_landed
from activities.git_objects import commit_fields, delete_refs, head_branch, resolve, set_ref
from coordinator.branches import (
    MAX_STAT_BYTES,
    TASK_TRAILER,
    base_ref,
)

T = TypeVar("T")

# Checkouts and `add -A` of a big repository can take a while; heartbeats cover the wait.
LONG = 1800.0

# How long a git command waits for a lock another live git holds before giving up (retryably).
LOCK_WAITS, LOCK_WAIT = 20, 0.5


@contextmanager
def git_errors() -> Iterator[None]:
    """Git failures as Temporal sees them: a busy lock is worth a retry, anything else is not."""
    try:
        yield
    except GitError as err:
        busy = lock_in_the_way(err) is not None or "but expected" in err.output
        raise ApplicationError(
            str(err), type="GitBusy" if busy else "GitError", non_retryable=not busy
        ) from err


async def git_waiting(*args: str, cwd: Path, timeout: float = 300, stdin: str | None = None) -> str:
    """git, waiting out a lock held by a live git and clearing one left by a dead git."""
    for _ in range(LOCK_WAITS):
        try:
            return await git(*args, cwd=cwd, timeout=timeout, stdin=stdin)
        except GitError as err:
            lock = lock_in_the_way(err)
            if lock is None:
                raise
            if await asyncio.to_thread(remove_stale_lock, lock):
                activity.logger.warning("removed a stale git lock %s", lock)
            else:
                await asyncio.sleep(LOCK_WAIT)
    return await git(*args, cwd=cwd, timeout=timeout, stdin=stdin)


async def update_ref(cwd: Path, ref: str, new: str, old: str | None = None) -> None:
    """`git update-ref ref new [old]`: in-process when libgit2 can (activities/git_objects.py),
    else by git, which waits out a busy lock and says why it failed."""
    if not set_ref(cwd, ref, new, old):
        await git_waiting("update-ref", ref, new, *([] if old is None else [old]), cwd=cwd)


async def delete_ref_names(cwd: Path, *refs: str) -> None:
    """Delete the refs that exist, as `git update-ref --stdin` with `delete` lines would."""
    if not delete_refs(cwd, *refs):
        stdin = "".join(f"delete {r}\n" for r in refs)
        await git_waiting("update-ref", "--stdin", cwd=cwd, stdin=stdin)


async def uninterrupted(step: Awaitable[T]) -> T:
    """Let a step that moves a branch finish even when the activity is cancelled meanwhile,
    so a cancel never leaves a half-updated checkout or a stale lock behind."""
    task = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with suppress(Exception):
            await task
        raise


async def resolved(cwd: Path, spec: str) -> str | None:
    """What `spec` names, in-process; a miss is asked of git, which has the last word (libgit2
    may not read a repository a newer git wrote), so only the rare miss costs a process."""
    found = resolve(cwd, spec)
    if found is None:
        result = await run_git("rev-parse", "--verify", "--quiet", f"{spec}^{{object}}", cwd=cwd)
        found = result.stdout if result.returncode == 0 else None
    return found


async def rev(cwd: Path, rev: str) -> str:
    found = await resolved(cwd, rev)
    if found is None:
        raise ApplicationError(
            f"'{rev}' does not exist in {cwd}", type="GitRefMissing", non_retryable=True
        )
    return found


async def ref_exists(cwd: Path, ref: str) -> bool:
    return await resolved(cwd, ref) is not None


async def current_branch(cwd: Path) -> str | None:
    if (branch := head_branch(cwd)) is not None:
        return branch
    result = await run_git("symbolic-ref", "--quiet", "--short", "HEAD", cwd=cwd)  # as above
    return result.stdout if result.returncode == 0 else None


async def task_base(cwd: Path, branch: str, execution_branch: str | None) -> str:
    """The commit the task branch was cut from (recorded when it was cut)."""
    recorded = await resolved(cwd, base_ref(branch))
    if recorded is not None:
        return recorded
    if execution_branch is not None:
        return await git_waiting(
            "merge-base", f"refs/heads/{branch}", f"refs/heads/{execution_branch}", cwd=cwd
        )
    raise ApplicationError(
        f"task branch {branch} has no recorded base; create it with create_task_worktree",
        type="GitRefMissing",
        non_retryable=True,
    )


async def is_task_commit(
    cwd: Path, commit: str, *, parent: str, message: str, tree: str | None = None
) -> bool:
    """Whether `commit` is the task commit we would make: same parent, message (and tree)."""
    parents, commit_tree, body = commit_fields(cwd, commit)
    return (
        parents == [parent]
        and (tree is None or commit_tree == tree)
        and body.strip() == message.strip()
    )


@dataclass
class WorktreeEntry:
    path: Path
    branch: str | None = None
    locked: str | None = None


async def worktree_entries(clone: Path) -> list[WorktreeEntry]:
    out = await git_waiting("worktree", "list", "--porcelain", cwd=clone)
    found: list[WorktreeEntry] = []
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        if key == "worktree":
            found.append(WorktreeEntry(Path(value).resolve()))
        elif found and key == "branch":
            found[-1].branch = value
        elif found and key == "locked":
            found[-1].locked = value
    return found[1:]  # the first is the clone itself


async def worktree_at(clone: Path, path: Path) -> WorktreeEntry | None:
    """The worktree registered at `path`, read where `git worktree list` reads it (each
    registration's folder <common dir>/worktrees/<id>: `gitdir` names the worktree's .git,
    `locked` is there while locked, with the reason) without starting a git."""
    admin = registration(clone, path)
    if admin is None:
        return None
    return WorktreeEntry(path.resolve(), _head_ref(admin), _lock_reason(admin))


def registration(clone: Path, path: Path) -> Path | None:
    """The registration folder of the worktree at `path`, if git has one."""
    target = path.resolve()
    registry = common_dir(clone) / "worktrees"
    for admin in sorted(registry.iterdir()) if registry.is_dir() else []:
        with suppress(OSError):
            pointer = Path((admin / "gitdir").read_text().strip())
            place = pointer if pointer.is_absolute() else admin / pointer
            if place.name == ".git":
                place = place.parent
            if place.resolve() == target:
                return admin
    return None


def _head_ref(admin: Path) -> str | None:
    with suppress(OSError):
        head = (admin / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            return head.removeprefix("ref: ")
    return None


def _lock_reason(admin: Path) -> str | None:
    try:
        return (admin / "locked").read_text().strip()
    except FileNotFoundError:
        return None


async def usable(entry: WorktreeEntry) -> bool:
    # `worktree add` marks a worktree "initializing" until its checkout is complete.
    return entry.locked != "initializing" and await is_git_repo(entry.path)


def clip_stat(stat: str, limit: int = MAX_STAT_BYTES) -> str:
    """A `--stat` within `limit` bytes: the first files, a count of the rest, the summary."""
    if len(stat.encode()) <= limit:
        return stat
    *lines, summary = stat.splitlines()
    kept: list[str] = []
    size = len(summary.encode()) + 64
    for line in lines:
        size += len(line.encode()) + 1
        if size > limit:
            break
        kept.append(line)
    return "\n".join([*kept, f" ... {len(lines) - len(kept)} more files", summary])


async def find_task_commit(clone: Path, base: str, head: str, task_id: str) -> str | None:
    """The commit since `base` whose trailer names the task, if it landed already."""
    if base == head or not might_have_landed(clone, base, head, task_id):
        return None  # nothing since, or nothing naming the task: no git to ask
    log = await git_waiting(
        "log",
        f"--format=%H %(trailers:key={TASK_TRAILER},valueonly,separator=%x2C)",
        f"{base}..{head}",
        cwd=clone,
    )
    for line in log.splitlines():
        commit, _, tasks = line.partition(" ")
        if task_id in tasks.split(","):
            return commit
    return None


async def merge_tree(cwd: Path, ours: str, theirs: str) -> Merged:
    """A three-way merge computed in the object store; no working tree or index is touched.
    In-process when the sides touched different files (activities/git_merge.py)."""
    if (tree := disjoint_merge(cwd, ours, theirs)) is not None:
        return Merged(tree)
    args = ("-c", "core.quotePath=false", "merge-tree", "--write-tree", "--name-only")
    result = await run_git(*args, ours, theirs, cwd=cwd, timeout=LONG)
    if result.returncode not in (0, 1):  # 1: conflicts; the tree holds them as markers
        raise GitError(["merge-tree", ours, theirs], cwd, result.returncode, result.stderr)
    files, _, messages = result.stdout.partition("\n\n")
    tree, *conflict_files = files.splitlines()
    if result.returncode == 0:
        return Merged(tree)
    conflicts = [m for m in messages.splitlines() if m.startswith("CONFLICT")]
    return Merged(tree, conflict_files, conflicts or ["CONFLICT: the merge failed"])


# --- a worktree's own folder, and removing a worktree -----------------------------------------


def admin_dir(wt: Path) -> Path:
    """The worktree's own git folder: private to it, gone when the worktree is removed."""
    return git_dir(wt)


async def discard_worktree(clone: Path, path: Path, *, registered: bool = True) -> None:
    """Remove a worktree and its registration; fine when either is already gone.
    `registered`: False when the caller just saw that git lists no worktree there."""
    trash = unregister_worktree(clone, path) if registered else None
    await delete_worktree_folders(path, trash)


def unregister_worktree(clone: Path, path: Path) -> Path | None:
    """Take the worktree at `path` off git's list, as `git worktree remove --force --force`
    does but in one atomic step: its registration folder (<common dir>/worktrees/<id>) is
    renamed into a trash folder, so a git listing the worktrees meanwhile (as `worktree
    add` does) finds it whole or not at all. Returns that trash folder (None: it was not
    registered), for `delete_worktree_folders`."""
    admin = registration(clone, path)
    return None if admin is None else trash_registration(clone, admin)


def trash_registration(clone: Path, admin: Path) -> Path | None:
    """The registration folder `admin` renamed into the clone's trash, in one step; that
    trash folder, or None when it is gone already."""
    trash = common_dir(clone) / "coord-trash" / f"{admin.name}-{uuid.uuid4().hex}"
    trash.parent.mkdir(exist_ok=True)
    try:
        admin.rename(trash)
    except FileNotFoundError:
        return None  # gone meanwhile
    return trash


async def delete_worktree_folders(path: Path, trash: Path | None) -> None:
    """The worktree's folder and its former registration: plain folders now, needing no
    lock (nothing of git's points at them any more)."""
    for folder in (path, trash):
        if folder is not None and (folder.exists() or folder.is_symlink()):
            if folder.is_symlink():
                folder.unlink()
            else:
                await asyncio.to_thread(shutil.rmtree, folder, True)
