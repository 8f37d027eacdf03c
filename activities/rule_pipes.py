"""Named pipes where git reads its rules, removed before coord's own git walks a worktree.

git opens every `.gitignore` and `.gitattributes` of the folders it walks (`add -A`,
`clean`, `checkout`, a diff), and `.gitmodules` once the index has a submodule link
(`status`). One that is a named pipe (FIFO) blocks that `open` until something writes to
it, and once a task's commands are gone nothing ever will: one
`mkfifo .gitignore` by a specialist would hold the task's commit for git's whole timeout
(30 minutes), then again on every retry. A link is not followed by git there, a socket or a
folder fails at once, and the jail cannot make device files: only a named pipe waits.

git can neither commit a named pipe nor read rules from one that nobody writes, so removing
it changes nothing that would be committed or ignored: `remove_rule_pipes` does, before
coord runs git in a worktree a specialist has written in, and says what it removed.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

RULE_FILES = frozenset({".gitignore", ".gitattributes", ".gitmodules"})


def remove_rule_pipes(worktree: Path) -> list[str]:
    """Remove every named pipe called like a rule file (RULE_FILES) in `worktree`, in
    any folder, reached as git reaches them (paths relative to the worktree, links not
    followed); their paths, sorted. A folder that cannot be read is passed over: git says so
    in its own words. A folder that denies the removal is made writable for it first (git
    does not keep folders' modes)."""
    removed: list[str] = []
    root = os.open(worktree, os.O_RDONLY | os.O_DIRECTORY)
    try:
        folders = ["."]
        while folders:
            folder = folders.pop()
            pipes, inside = _read_folder(root, folder)
            folders += inside
            removed += [_remove(root, folder, name) for name in pipes]
    finally:
        os.close(root)
    if removed:
        logger.warning(
            "%s: removed named pipes git would have waited on for ever: %s",
            worktree,
            ", ".join(sorted(removed)),
        )
    return sorted(removed)


def _read_folder(root: int, folder: str) -> tuple[list[str], list[str]]:
    """The rule files in `folder` that are named pipes, and its subfolders."""
    pipes: list[str] = []
    inside: list[str] = []
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root)
    except OSError:  # gone, a link, unreadable, a path too long for git as well
        return pipes, inside
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    inside.append(os.path.join(folder, entry.name))
                elif entry.name in RULE_FILES and _is_pipe(fd, entry.name):
                    pipes.append(entry.name)
    except OSError:
        pass
    finally:
        os.close(fd)
    return pipes, inside


def _is_pipe(folder: int, name: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _remove(root: int, folder: str, name: str) -> str:
    path = os.path.normpath(os.path.join(folder, name))
    try:
        os.unlink(path, dir_fd=root)
    except FileNotFoundError:
        pass
    except PermissionError:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root)
        try:
            os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) | stat.S_IRWXU)
            os.unlink(name, dir_fd=fd)
        finally:
            os.close(fd)
    return path
