"""Registering a task's worktree in-process, atomically: what `git worktree add --no-checkout
--lock -B <branch> <path> <commit>` does, without a git process and without the clone's lock.

`git worktree add` reads every other worktree's registration and fails on one that another
`add` has only half written, so parallel tasks had to take turns for it, some 30 ms each under
load. Here the registration (gitrepository-layout(5): <common dir>/worktrees/<id>/ with
`gitdir`, `commondir`, `HEAD` and `locked`) is written in a staging folder and renamed into
place in one step: a git listing the worktrees meanwhile finds it whole or not at all, and
two tasks renaming at once cannot both take the same id. It is locked "initializing", as git
locks a worktree it is still making, until its files are checked out (activities/worktrees.py),
so a crash half-way leaves a worktree that is made again, never one that is worked in.
"""

from __future__ import annotations

import errno
import shutil
import uuid
from pathlib import Path

from activities.git import common_dir
from activities.worktree_git import update_ref

# git's reason for a worktree it is still making: such a worktree is never reused.
INITIALIZING = "initializing"
# Ids tried after the folder's own name, as git does (t1, t11, t12, ...), before giving up.
MAX_SUFFIX = 1000


async def register_worktree(
    clone: Path,
    path: Path,
    branch: str,
    commit: str,
    *,
    folder: Path | None = None,
    index: Path | None = None,
) -> None:
    """A worktree at `path` (which must not exist) on `branch`, set to `commit`; registered,
    locked "initializing", with nothing checked out. `folder`: a spare worktree's folder
    (activities/worktree_spares.py), moved to `path` with its files, and `index` its former
    index, moved into the registration when there is one."""
    common = common_dir(clone)
    registry = common / "worktrees"
    registry.mkdir(exist_ok=True)
    staging = common / "coord-staging" / f"{path.name}-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        (staging / "gitdir").write_text(f"{path.absolute() / '.git'}\n")
        (staging / "commondir").write_text("../..\n")
        (staging / "HEAD").write_text(f"ref: refs/heads/{branch}\n")
        (staging / "locked").write_text(INITIALIZING)
        if index is not None and index.is_file():
            index.rename(staging / "index")
        await update_ref(clone, f"refs/heads/{branch}", commit)  # -B: made or moved
        if folder is None:
            path.mkdir(parents=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            folder.rename(path)
        # Before the registration appears: git never sees it pointing at nothing (which
        # `git worktree prune` would take for a worktree deleted by hand).
        _point(path, registry / path.name)
        admin = _move_into(staging, registry, path.name)
        if admin.name != path.name:  # the id was taken: git's way, a number after it
            _point(path, admin)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when it was moved


def _point(path: Path, admin: Path) -> None:
    """The worktree's `.git` file, naming its registration; written anew (not through a link
    left in a spare's place)."""
    dot_git = path / ".git"
    dot_git.unlink(missing_ok=True)
    dot_git.write_text(f"gitdir: {admin}\n")


def _move_into(staging: Path, registry: Path, name: str) -> Path:
    """Rename `staging` to a free id in the registry; that id's folder."""
    for n in range(MAX_SUFFIX):
        admin = registry / (name if n == 0 else f"{name}{n}")
        try:
            staging.rename(admin)  # atomic; refused onto a folder that has files
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            continue
        return admin
    raise FileExistsError(f"no free worktree id for {name} in {registry}")
