"""Spare worktrees: a landed task's worktree kept, files and all, for the next task of the
execution, instead of one folder of files deleted and another written.

Making a worktree writes every file of the branch, and removing it deletes them again: for a
repository of 5,000 files, 0.3 to 2.7 s of kernel time per task on a small machine, against
some 30 ms for the rest of a no-op task. A spare is brought to the next task's base instead
(activities/worktrees.py, `_check_out`): `git clean -ffdx` removes untracked and ignored
files, then `git reset --hard` writes only the files that differ (the index kept with the
spare tells git which are unchanged). Before and after, activities/spare_check.py makes sure
the result is what a new worktree would be: git alone leaves some things an earlier task may
have planted (named pipes, a `.git` below, ACLs, bytes its index only seems to match). A
spare that fails, or whose clean or reset fails or hangs, is thrown away and the task gets a
new worktree. Not carried over either: the earlier task's git folder (its HEAD, conflict and
replay records); a new registration is written and only the index moves into it.

A spare lives in `<root>/<execution>/spare-worktrees/<registration id>`, outside every jail
(a jail mounts its own worktree only). It stays registered with git, its HEAD detached and
locked with `SPARE` as the reason, so that `git worktree prune` leaves it and no step takes it
for a task's worktree. At most `MAX_SPARES` are kept per execution, and only worktrees of
`MIN_FILES` tracked files or more: below that, a new worktree costs no more. The sweep at the
end of the implementation phase (`commit_pending_work`) removes them with the other
worktrees. Fix worktrees are never kept: validation, integration and review come after that
sweep. Nor is a worktree with submodules (`git reset` leaves what a task did inside one).

Both steps run with the clone's lock held, and a crash at any point leaves nothing that is
used wrongly. A spare is only taken when its folder and its registration name each other and
the registration says `SPARE`. Anything else in the spares folder is deleted when seen. A
taken spare is registered anew, locked "initializing" until its files are reset, and is made
again from nothing if a crash stops it half way (activities/worktrees.py, `_create`).
"""

from __future__ import annotations

import uuid
from contextlib import suppress
from pathlib import Path

import pygit2

from activities.git import GitError, common_dir, open_repository
from activities.git_checkout import plain_repository, plain_tree
from activities.worktree_add import register_worktree
from activities.worktree_git import (
    delete_worktree_folders,
    registration,
    trash_registration,
    unregister_worktree,
)

# The lock reason of a spare worktree (`git worktree list` shows it).
SPARE = "coord: spare worktree, for the next task"
# Spares kept per execution: more than the tasks that usually run at once.
MAX_SPARES = 16
# Worktrees of fewer tracked files are not kept: making one anew (in-process, some 3 ms for a
# few files) costs no more than a spare's reset (two git processes) and check. Measured per
# turn, 300 files: 78-83 ms from a spare against 81-329 ms anew (benchmarks/RESULTS.md).
MIN_FILES = 200


def spares_dir(worktree: Path) -> Path:
    """`<root>/<execution>/spare-worktrees`, beside `<root>/<execution>/worktrees/<task>`."""
    return worktree.parent.parent / "spare-worktrees"


def discarded_dir(worktree: Path) -> Path:
    """`<root>/<execution>/discarded-worktrees`: spares found unfit after their reset."""
    return worktree.parent.parent / "discarded-worktrees"


def park(clone: Path, worktree: Path, commit: str) -> bool:
    """The landed worktree (its branch deleted already) kept as a spare, its HEAD detached at
    `commit`, the clone's head. False: not kept, still registered where it was (the caller
    removes it)."""
    admin = registration(clone, worktree)
    if admin is None or worktree.is_symlink() or not worktree.is_dir():
        return False
    if not plain_base(clone, commit):
        return False
    if _tracked_files(admin / "index") < MIN_FILES:
        return False
    spares = spares_dir(worktree)
    spare = spares / admin.name
    try:
        spares.mkdir(exist_ok=True)
        if len(list(spares.iterdir())) >= MAX_SPARES or spare.exists():
            return False
        # The folder first: until the registration follows, git finds it missing (a
        # registration `git worktree prune` or the sweep removes; the folder is deleted
        # when `take` sees it).
        worktree.rename(spare)
    except OSError:
        return False
    try:
        (admin / "HEAD").write_text(f"{commit}\n")
        (admin / "locked").write_text(SPARE)
        (admin / "gitdir").write_text(f"{spare.absolute() / '.git'}\n")
    except OSError:
        with suppress(OSError):
            spare.rename(worktree)
            (admin / "gitdir").write_text(f"{worktree.absolute() / '.git'}\n")
            (admin / "locked").unlink(missing_ok=True)
        return False
    return True


async def take(clone: Path, worktree: Path, branch: str, commit: str) -> bool:
    """A spare moved to `worktree` and registered there on `branch`, set to `commit`, locked
    "initializing" with its files as the earlier task left them. False: no spare."""
    spares = spares_dir(worktree)
    registry = common_dir(clone) / "worktrees"
    if not plain_base(clone, commit):
        return False
    for spare in sorted(spares.iterdir()) if spares.is_dir() else []:
        admin = registry / spare.name
        if not _is_spare(admin, spare):
            _out_of_the_way(spare, worktree)  # left by a crash: the sweep deletes it
            continue
        old_admin = trash_registration(clone, admin)
        if old_admin is None:
            continue
        try:
            await register_worktree(
                clone, worktree, branch, commit, folder=spare, index=old_admin / "index"
            )
        except OSError:
            await delete_worktree_folders(spare, old_admin)
            if worktree.exists():
                raise  # registered after all: what is there is made again from nothing
            continue
        await delete_worktree_folders(old_admin, None)
        return True
    return False


# --- a spare found unfit after its reset ---------------------------------------------------


def _out_of_the_way(folder: Path, worktree: Path) -> Path:
    """`folder` renamed into the discarded folder (instant, with the clone's lock held; the
    sweep at the end of the phase deletes it)."""
    away = discarded_dir(worktree) / uuid.uuid4().hex
    away.parent.mkdir(exist_ok=True)
    with suppress(FileNotFoundError):
        folder.rename(away)
    return away


def set_aside(clone: Path, worktree: Path) -> tuple[Path, Path | None]:
    """A spare found unfit (activities/spare_check.py), off git's list and out of the task's
    place at once (renamed, even when a folder in it cannot be deleted), with the clone's
    lock held. Returns (its folder, its former registration) for `delete_worktree_folders`
    after the lock: deleting takes a while, and the sweep tries again what is left."""
    trash = unregister_worktree(clone, worktree)
    return _out_of_the_way(worktree, worktree), trash


# --- a spare's parts ------------------------------------------------------------------------


def plain_base(clone: Path, commit: str) -> bool:
    """Whether a spare may be kept or taken for tasks based on `commit`: its tree has no
    submodule (a reset leaves what a task did inside one), and nothing changes bytes on
    checkout (no `.gitattributes`, no `core.autocrlf` and the like: a new worktree's files
    would differ from their blobs, and `exactly_tracked` compares with the blobs). The rule
    of the in-process checkout (activities/git_checkout.py). False when it cannot tell."""
    try:
        repo = open_repository(clone)
        tree = repo.revparse_single(commit).peel(pygit2.Tree)
        return plain_repository(repo) and plain_tree(repo, tree)
    except (GitError, pygit2.GitError, KeyError, ValueError, RecursionError):
        return False


def _tracked_files(index: Path) -> int:
    """How many entries the index has, from its header (0 when it cannot be read)."""
    try:
        with index.open("rb") as f:
            header = f.read(12)
    except OSError:
        return 0
    if len(header) < 12 or header[:4] != b"DIRC":
        return 0
    return int.from_bytes(header[8:12], "big")


def _is_spare(admin: Path, spare: Path) -> bool:
    """The spare's folder and its registration name each other, and it is locked as one."""
    dot_git = spare / ".git"
    if spare.is_symlink() or admin.is_symlink() or dot_git.is_symlink() or not dot_git.is_file():
        return False
    try:
        pointer = Path((admin / "gitdir").read_text().strip())
        locked = (admin / "locked").read_text().strip()
        named = Path(dot_git.read_text().strip().removeprefix("gitdir:").strip())
    except OSError:
        return False
    return locked == SPARE and pointer == spare.absolute() / ".git" and named == admin
