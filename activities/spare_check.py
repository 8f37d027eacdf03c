"""Whether a spare worktree (activities/worktree_spares.py), once cleaned and reset by git, is
what a new worktree would be. git alone does not make it so, for an earlier task that tried:
git neither removes nor checks named pipes, sockets and devices (and waits for ever on a pipe
named `.gitattributes`), leaves a `.git` inside a folder with tracked files, a second link to
a tracked file, modes, ACLs and inode flags it does not track, folders it cannot enter, and
any file whose stat data its index matches, whatever its bytes (an index written through the
filter of an earlier task's own ignored `.gitattributes` matches bytes never committed).

`nothing_special` runs before git (a spare with a pipe is not reset at all), `exactly_tracked`
after: the index's files and folders, each with the mode a new checkout gives it, no ACL and
no inode flag a user can set, and each file exactly its blob's bytes; nothing else. A spare
that fails either gets the task a new worktree. Only file times and other extended
attributes carry over.

A file is read and hashed only when it could have changed since it last passed: a file that
passed is remembered (`VerifiedFiles`) by its inode and its change time (ctime), which the
kernel sets on every change to the file's bytes, mode, links, ACLs or flags, and which no
process can set back (only a change of the system clock could). One writer sets no new
ctime: a process that holds the file mapped for writing, after its first write to a page
(until the page is written back; on tmpfs, never). Its first write came after it started,
so a file is remembered only when its ctime is older than the start of every command still
running on this worker (activities/running_commands.py), and older than the check by more
than a clock tick (`RACY_NS`). This assumes a file system whose ctime means "changed"
(ext4, xfs, btrfs, tmpfs; not vfat's creation time, nor every FUSE or network file system).

For 5,000 files the check takes some 100-150 ms when it hashes every file, against 0.3-2.7 s
to write a new worktree's files, and some 40 ms when a task changed a few.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

from activities.git import SAFE_CONFIG, git_env
from activities.git_checkout import process_umask
from activities.running_commands import oldest_start

FILE = 0o100644
EXECUTABLE = 0o100755
LINK = 0o120000
GITLINK = 0o160000
# FS_IOC_GETFLAGS, and the inode flags (chattr) a task could set that a new file would not
# have: secure deletion, undelete, compression, sync, immutable, append only, no dump, no
# atime, data journaling, no tail merging, dirsync, top of a hierarchy, no copy on write,
# project inheritance. Others (extents, inline data) are the file system's own.
GET_FLAGS = 0x80086601
USER_FLAGS = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x40 | 0x80
USER_FLAGS |= 0x4000 | 0x8000 | 0x10000 | 0x20000 | 0x800000 | 0x20000000
# An fd's flags cannot be read there: no flags (tmpfs, some network file systems).
NO_FLAGS = (errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)
READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# How long listing the index may take (it reads no file of the worktree).
LIST_TIMEOUT_S = 60
# A file changed this recently is hashed again next time, whatever its change time says: a
# file system's clock ticks (jiffies, whole seconds on some) could give a later change the
# same ctime. git's index calls such entries racy.
RACY_NS = 1_000_000_000


def nothing_special(worktree: Path) -> bool:
    """Whether the worktree holds only files, folders and symbolic links."""
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


def exactly_tracked(worktree: Path) -> bool:
    """Whether the worktree holds its index's files and folders as a new worktree would
    (the module's docstring), and nothing else."""
    try:
        expected = _Expected(time.time_ns(), _index_entries(worktree))
        if not expected.plain() or not expected.folder(str(worktree)):
            return False
        return expected.count(str(worktree), "") == len(expected.entries)
    except (subprocess.SubprocessError, OSError, ValueError, RecursionError):
        return False


def _index_entries(worktree: Path) -> dict[str, tuple[int, bytes]]:
    """The index's entries as git lists them (`git ls-files --stage -z`): path (as the file
    system names it) -> (mode, blob id). git reads an index of any version or extension; half
    the time libgit2 took to hand over 5,000 entries."""
    listed = subprocess.run(
        ["git", *SAFE_CONFIG, "ls-files", "--stage", "-z"],
        cwd=worktree,
        env=git_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=LIST_TIMEOUT_S,
        check=True,
    ).stdout
    entries: dict[str, tuple[int, bytes]] = {}
    for record in listed.split(b"\0"):
        if record:
            meta, _, path = record.partition(b"\t")
            mode, blob, stage = meta.split(b" ")
            if stage != b"0":
                raise ValueError(f"{path!r} is unmerged in the index")
            entries[os.fsdecode(path)] = (int(mode, 8), bytes.fromhex(blob.decode()))
    return entries


class _Expected:
    """The index's entries (path: mode and blob id), checked against the folder."""

    def __init__(self, since: int, entries: dict[str, tuple[int, bytes]]) -> None:
        # Files changed before this (ns since the epoch, as ctimes are) are remembered once
        # they pass: before the check started, and before every command running now did.
        self.settled = min(since, oldest_start() or since) - RACY_NS
        self.entries = entries
        self.umask = process_umask()
        self.folders: set[str] = set()
        for path in entries:
            end = path.rfind("/")
            while end > 0 and path[:end] not in self.folders:
                self.folders.add(path[:end])
                end = path.rfind("/", 0, end)

    def plain(self) -> bool:
        """Modes can be told (the umask is known) and there is no submodule."""
        return self.umask is not None and all(m != GITLINK for m, _ in self.entries.values())

    def count(self, folder: str, prefix: str) -> int:
        """How many tracked entries are below `folder`, as expected; -1 (at once) when
        anything else is there."""
        found = 0
        with os.scandir(folder) as entries:
            for entry in entries:
                name = prefix + entry.name
                if name == ".git":
                    continue  # the worktree's own, written with its new registration
                if entry.is_dir(follow_symlinks=False):
                    below = self.count(entry.path, name + "/") if name in self.folders else -1
                    if below < 0 or not self.folder(entry.path):
                        return -1
                    found += below
                elif self.file(entry.path, name):
                    found += 1
                else:
                    return -1  # untracked, a pipe, a socket, a second link, other bytes
        return found

    def folder(self, path: str) -> bool:
        """A real folder with the default mode, no ACL, no flag a user sets."""
        assert self.umask is not None
        fd = os.open(path, READ | os.O_DIRECTORY)
        try:
            info = os.fstat(fd)
            if stat.S_IMODE(info.st_mode) != 0o777 & ~self.umask:
                return False
            return _no_acl_nor_flags(fd)
        finally:
            os.close(fd)

    def file(self, path: str, name: str) -> bool:
        """A tracked symbolic link to its blob's target, or a tracked file of one link with
        git's mode, no ACL, no flag a user sets and exactly its blob's bytes."""
        assert self.umask is not None
        mode, blob = self.entries.get(name, (0, None))
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            return mode == LINK and _blob_of(os.readlink(os.fsencode(path))) == blob
        wanted = {FILE: 0o666, EXECUTABLE: 0o777}.get(mode)
        if wanted is None or blob is None or not self._as_made(info, wanted):
            return False
        if VERIFIED.holds(info, blob):
            return True  # unchanged since it last passed
        fd = os.open(path, READ)
        try:
            info = os.fstat(fd)
            if not self._as_made(info, wanted) or not _no_acl_nor_flags(fd):
                return False
            if _blob_id(fd, info.st_size) != blob:
                return False
        finally:
            os.close(fd)
        if info.st_ctime_ns < self.settled:
            VERIFIED.add(info, blob)
        return True

    def _as_made(self, info: os.stat_result, wanted: int) -> bool:
        """A regular file of one link, with the mode a checkout gives it."""
        assert self.umask is not None
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            return False
        return stat.S_IMODE(info.st_mode) == wanted & ~self.umask


class VerifiedFiles:
    """The files that passed the check, as (inode, ctime, size, mode, blob) digests: a file
    whose stat data still match one is the same file, unchanged (a change to its bytes, mode,
    links, ACLs or flags sets its ctime). Kept in the worker's memory only (a restart hashes
    again), forgotten whole past `limit` entries (some 20 MB)."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._seen: set[bytes] = set()
        self._lock = threading.Lock()  # checks run in worker threads

    def holds(self, info: os.stat_result, blob: bytes) -> bool:
        return _digest(info, blob) in self._seen

    def add(self, info: os.stat_result, blob: bytes) -> None:
        with self._lock:
            if len(self._seen) >= self.limit:
                self._seen.clear()
            self._seen.add(_digest(info, blob))


def _digest(info: os.stat_result, blob: bytes) -> bytes:
    facts = (info.st_dev, info.st_ino, info.st_ctime_ns, info.st_mtime_ns, info.st_size)
    key = b"%d %d %d %d %d %o " % (*facts, info.st_mode) + blob
    return hashlib.blake2b(key, digest_size=16).digest()


VERIFIED = VerifiedFiles()


def _no_acl_nor_flags(fd: int) -> bool:
    if any(name.startswith("system.posix_acl") for name in os.listxattr(fd)):
        return False
    try:
        flags = int.from_bytes(fcntl.ioctl(fd, GET_FLAGS, bytes(8))[:4], sys.byteorder)
    except OSError as err:
        return err.errno in NO_FLAGS
    return not flags & USER_FLAGS


def _blob_of(data: bytes) -> bytes:
    digest = _blob_hash(len(data))
    digest.update(data)
    return digest.digest()


def _blob_id(fd: int, size: int) -> bytes:
    """The id git gives the file's bytes as a blob, read from `fd`."""
    digest = _blob_hash(size)
    read = 0
    while chunk := os.read(fd, 1 << 20):
        digest.update(chunk)
        read += len(chunk)
    return digest.digest() if read == size else b""


def _blob_hash(size: int) -> hashlib._Hash:
    """A blob's id so far: SHA-1 of "blob <size>\\0", then the bytes."""
    return hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
