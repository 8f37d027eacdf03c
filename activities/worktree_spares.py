"""Spare worktrees: a landed task's worktree kept, files and all, for the next task of the
execution, instead of one folder of files deleted and another written.

Making a worktree writes every file of the branch, and removing it deletes them again: for a
repository of 5,000 files, 0.3 to 2.7 s of kernel time per task on a small machine, against
some 30 ms for the rest of a no-op task. A spare is brought to the next task's base instead
(activities/worktrees.py, `_check_out`): `git clean -ffdx` removes untracked and ignored
files, then `git reset --hard` writes only the files that differ (the index kept with the
spare tells git which are unchanged). git leaves some things, though: named pipes, sockets
and devices (`nothing_special` refuses a spare with one before git runs: git would wait on a
pipe), a `.git` inside a folder with tracked files, a second link to a tracked file, modes
it does not track, folders it cannot enter, paths too long for it, and files whose stat data
its index matches whatever their bytes. So the result is checked (`exactly_tracked`): the
index's files and folders, each with the mode git gives a new one and exactly its blob's
bytes, and nothing else. A spare that fails, or whose clean or reset fails or hangs, is
thrown away and the task gets a new worktree. Not carried over either: the earlier task's
git folder (its HEAD, conflict and replay records); a new registration is written and only
the index moves into it. What carries over is what no checkout sets: the files' times and
extended attributes.

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

import os
import stat
import uuid
from contextlib import suppress
from pathlib import Path

import pygit2
from pygit2.enums import FileMode

from activities.git import GitError, common_dir, open_repository
from activities.git_checkout import process_umask
from activities.worktree_add import register_worktree
from activities.worktree_git import delete_worktree_folders, registration, unregister_worktree

# The lock reason of a spare worktree (`git worktree list` shows it).
SPARE = "coord: spare worktree, for the next task"
# Spares kept per execution: more than the tasks that usually run at once.
MAX_SPARES = 16
# Worktrees of fewer tracked files are not kept: making one anew (in-process, some 3 ms for a
# few files) costs no more than the reset of a spare (two git processes); about 100 files is
# where they break even.
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
    if not no_submodules(clone, commit):
        return False  # a reset leaves what a task did inside one
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
    if not no_submodules(clone, commit):
        return False
    for spare in sorted(spares.iterdir()) if spares.is_dir() else []:
        admin = registry / spare.name
        if not _is_spare(admin, spare):
            await delete_worktree_folders(spare, None)  # left by a crash
            continue
        old_admin = _trash(clone, admin)
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


# --- after the reset: exactly the tracked files, or a new worktree ---------------------------


def exactly_tracked(worktree: Path) -> bool:
    """Whether, after `git clean -ffdx` and `git reset --hard`, the worktree holds its
    index's files and nothing else, as a new worktree would: each a regular file of one
    link with git's mode and exactly the bytes of its blob (or a symbolic link to what its
    blob says), each folder (the worktree's own too) holding tracked files, with the
    default mode; no submodule. git itself leaves a `.git` or a named pipe inside a tracked
    folder, a second link to a file, a folder it cannot enter, modes it does not track, and
    any file whose stat data its index matches, whatever its bytes (an index written through
    a filter of an earlier task's own `.gitattributes` matches content that was never
    committed)."""
    umask = process_umask()
    try:
        index = pygit2.Repository(str(worktree)).index
        expected = _Expected({entry.path: (entry.mode, entry.id) for entry in index}, umask)
        root = os.lstat(worktree)
    except (pygit2.GitError, KeyError, OSError, ValueError, TypeError):
        return False
    if not expected.plain() or not expected.folder_mode(root):
        return False
    try:
        return expected.count(str(worktree), "") == len(expected.entries)
    except (OSError, RecursionError, pygit2.GitError):
        return False


def nothing_special(worktree: Path) -> bool:
    """Whether the worktree holds only files, folders and symbolic links: git neither
    cleans away a named pipe, a socket or a device nor checks what it reads from one (a
    pipe named `.gitattributes` holds `git reset` for ever). A spare with one is not reset
    at all."""
    try:
        return _plain_entries(str(worktree))
    except (OSError, RecursionError):
        return False


def _plain_entries(folder: str) -> bool:
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_symlink() or entry.is_file(follow_symlinks=False):
                continue
            if not entry.is_dir(follow_symlinks=False) or not _plain_entries(entry.path):
                return False
    return True


FILE = 0o100644
EXECUTABLE = 0o100755
LINK = 0o120000
GITLINK = 0o160000


class _Expected:
    """The index's entries (path: mode and blob id), checked against the folder."""

    def __init__(self, entries: dict[str, tuple[int, pygit2.Oid]], umask: int | None) -> None:
        self.entries = entries
        self.umask = umask
        self.folders = {path[:n] for path in entries for n, c in enumerate(path) if c == "/"}

    def plain(self) -> bool:
        """Modes can be told (the umask is known) and there is no submodule."""
        return self.umask is not None and all(m != GITLINK for m, _ in self.entries.values())

    def folder_mode(self, info: os.stat_result) -> bool:
        assert self.umask is not None
        return stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o777 & ~self.umask

    def count(self, folder: str, prefix: str) -> int:
        """How many tracked entries are below `folder`, as expected; -1 (at once) when
        anything else is there."""
        found = 0
        with os.scandir(folder) as entries:
            for entry in entries:
                name = prefix + entry.name
                if name == ".git":
                    continue  # the worktree's own, written with its new registration
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    if name not in self.folders or not self.folder_mode(info):
                        return -1
                    below = self.count(entry.path, name + "/")
                    if below < 0:
                        return -1
                    found += below
                elif self._file(entry.path, name, info):
                    found += 1
                else:
                    return -1  # untracked, a pipe, a socket, a second link, other bytes
        return found

    def _file(self, path: str, name: str, info: os.stat_result) -> bool:
        assert self.umask is not None
        mode, blob = self.entries.get(name, (0, None))
        if stat.S_ISLNK(info.st_mode):
            return mode == LINK and pygit2.hash(os.readlink(os.fsencode(path))) == blob
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            return False
        wanted = {FILE: 0o666, EXECUTABLE: 0o777}.get(mode)
        if wanted is None or stat.S_IMODE(info.st_mode) != wanted & ~self.umask:
            return False
        return pygit2.hashfile(path) == blob


async def throw_away(clone: Path, worktree: Path) -> None:
    """A spare found unfit (`exactly_tracked`), off git's list and out of the task's place
    at once (renamed, even when a folder in it cannot be deleted), then deleted as far as it
    can be; the sweep tries again. With the clone's lock held."""
    trash = unregister_worktree(clone, worktree)
    away = discarded_dir(worktree) / uuid.uuid4().hex
    away.parent.mkdir(exist_ok=True)
    with suppress(FileNotFoundError):
        worktree.rename(away)
    await delete_worktree_folders(away, trash)


# --- a spare's parts ------------------------------------------------------------------------


def no_submodules(clone: Path, commit: str) -> bool:
    """Whether the commit's tree has no submodule (gitlink) at any depth; False when it
    cannot tell."""
    try:
        repo = open_repository(clone)
        return _no_gitlinks(repo, repo.revparse_single(commit).peel(pygit2.Tree))
    except (GitError, pygit2.GitError, KeyError, ValueError, RecursionError):
        return False


def _no_gitlinks(repo: pygit2.Repository, tree: pygit2.Tree) -> bool:
    known = _without_gitlinks.get(tree.id)
    if known is not None:
        return known
    found = True
    for entry in tree:
        if entry.filemode == FileMode.COMMIT:
            found = False
        elif entry.filemode == FileMode.TREE:
            found = _no_gitlinks(repo, repo[entry.id].peel(pygit2.Tree))
        if not found:
            break
    if len(_without_gitlinks) >= 200_000:
        _without_gitlinks.clear()
    _without_gitlinks[tree.id] = found
    return found


# Trees known to have no gitlink (or some), by id: a tree's id is its content.
_without_gitlinks: dict[pygit2.Oid, bool] = {}


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
    if spare.is_symlink() or dot_git.is_symlink() or not dot_git.is_file():
        return False
    try:
        pointer = Path((admin / "gitdir").read_text().strip())
        locked = (admin / "locked").read_text().strip()
        named = Path(dot_git.read_text().strip().removeprefix("gitdir:").strip())
    except OSError:
        return False
    return locked == SPARE and pointer == spare.absolute() / ".git" and named == admin


def _trash(clone: Path, admin: Path) -> Path | None:
    """The spare's registration off git's list (renamed into the trash, in one step, as
    `unregister_worktree` does); None when it is gone already."""
    trash = common_dir(clone) / "coord-trash" / f"{admin.name}-{uuid.uuid4().hex}"
    trash.parent.mkdir(exist_ok=True)
    try:
        admin.rename(trash)
    except FileNotFoundError:
        return None
    return trash
