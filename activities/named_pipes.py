"""Named pipes in a folder coord's git is about to walk, removed first.

git opens files of the folders it walks: every `.gitignore` and `.gitattributes` (`add -A`,
`clean`, `checkout`, a diff, a merge), `.gitmodules` once the index has a submodule link
(`status`), `.mailmap` (`log`), and the `HEAD`, refs and `commondir` of a git repository
nested in the worktree (`add -A`, `status`). One that is a named pipe (FIFO) blocks that
`open` until something writes to it, and once a plan's commands are gone nothing ever will:
one `mkfifo .gitignore` by a specialist held the task's commit for git's whole timeout (30
minutes) and every retry after it; in the execution's clone (a gate's or a setup command's
doing) it froze the worker, whose in-process checkout (libgit2) opens the same files.

git never commits a named pipe, so removing them all loses nothing that could land:
`remove_named_pipes` does, after every plan command, after every specialist's turn and
before coord's git reads a worktree a specialist wrote in, and the worker's log names them.
So do the links git follows out of the folder, which it never commits either: a `.git`
below the folder's own, anything inside such a nested `.git` folder, and a `.gitmodules`
leading to what is not a file. (libgit2 follows a linked `.gitignore` or `.gitattributes`
too: the in-process checkout leaves such a folder to git, activities/git_checkout.py.)

The folder's own `.git` is not walked: the jail cannot write there. Only a command still
running could put a pipe back, or swap a folder for a link while the walk runs
(docs/security.md: "Not covered").
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

GIT_PATH_MAX = 4096  # git reaches nothing whose path in the worktree is longer
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


async def sweep_named_pipes(folder: Path, after: str = "") -> None:
    """`remove_named_pipes` in a thread, carried to its end even when the caller is
    cancelled meanwhile (a cancelled command's pipes go too)."""
    await asyncio.shield(asyncio.to_thread(remove_named_pipes, folder, after))


def remove_named_pipes(folder: Path, after: str = "") -> list[str]:
    """Remove every named pipe in `folder` and below, and the links described above; their
    paths relative to `folder`, sorted. Folders are reached as git reaches them (relative
    paths, links not followed); one that denies its owner listing or removal is given its
    owner's permissions first (git keeps no folder's mode). A folder that is gone, or a path
    git could not reach either, is passed over. `after` says what ran there, for the log."""
    try:
        root = os.open(folder, os.O_PATH | os.O_DIRECTORY)
    except OSError:  # gone, or not a folder
        return []
    removed: list[str] = []
    try:
        folders = ["."]
        while folders:
            here = folders.pop()
            fd = _open_folder(root, here)
            if fd is None:
                continue
            try:
                inside, found = _sweep_folder(fd, here)
            finally:
                os.close(fd)
            folders += inside
            removed += found
    finally:
        os.close(root)
    if removed:
        logger.warning(
            "%s: removed what git would have waited on for ever (named pipes, or links to "
            "them), left%s: %s",
            folder,
            f" by {after}" if after else "",
            ", ".join(repr(path) for path in sorted(removed)),
        )
    return sorted(removed)


def _open_folder(root: int, here: str) -> int | None:
    """`here` (relative to root) opened for listing; its owner's permissions added when it
    denies that; None when it cannot be opened (gone, a link, too long a path)."""
    try:
        return os.open(here, _FOLDER, dir_fd=root)
    except PermissionError:
        pass
    except OSError:
        return None
    try:
        handle = os.open(here, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root)
        try:
            mode = os.fstat(handle).st_mode
            os.chmod(f"/proc/self/fd/{handle}", stat.S_IMODE(mode) | stat.S_IRWXU)
        finally:
            os.close(handle)
        return os.open(here, _FOLDER, dir_fd=root)
    except OSError:
        return None


def _sweep_folder(fd: int, here: str) -> tuple[list[str], list[str]]:
    """The subfolders of the folder `fd` (at `here`), and what was removed from it."""
    inside: list[str] = []
    doomed: list[str] = []
    nested = here != "."  # below the folder itself, whose own `.git` is not walked
    in_git = ".git" in here.split("/")
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    continue  # most entries: nothing more to ask
                if entry.is_dir(follow_symlinks=False):
                    path = entry.name if here == "." else f"{here}/{entry.name}"
                    own_git = path == ".git"
                    if not own_git and len(os.fsencode(path)) < GIT_PATH_MAX:
                        inside.append(path)
                elif _unwanted(fd, entry.name, in_git or (nested and entry.name == ".git")):
                    doomed.append(entry.name)
    except OSError:
        pass  # what was listed so far
    return inside, [n if here == "." else f"{here}/{n}" for n in doomed if _remove(fd, n)]


def _unwanted(fd: int, name: str, in_git: bool) -> bool:
    """A named pipe; or a link git follows out of the folder (see the module): any link in
    (or being) a nested `.git`, a `.gitmodules` leading to what is not a file."""
    try:
        mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
    except OSError:
        return False
    if stat.S_ISFIFO(mode):
        return True
    if not stat.S_ISLNK(mode) or not (in_git or name == ".gitmodules"):
        return False
    if in_git:
        return True
    try:
        target = os.stat(name, dir_fd=fd).st_mode
    except OSError:
        return False  # dangling, or a loop: git fails at once
    return not (stat.S_ISREG(target) or stat.S_ISDIR(target))


def _remove(fd: int, name: str) -> bool:
    """Unlink `name` in the folder `fd`, giving the folder its owner's permissions if it
    denies that; False when it is gone meanwhile or cannot be removed (logged)."""
    try:
        try:
            os.unlink(name, dir_fd=fd)
        except PermissionError:
            os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) | stat.S_IRWXU)
            os.unlink(name, dir_fd=fd)
    except FileNotFoundError:
        return False
    except OSError as err:
        logger.warning("cannot remove %r, which git would wait on for ever: %s", name, err)
        return False
    return True
