"""The GitHub token for one git command, and for nothing else.

Git asks its credential helpers for a password when the server answers 401. For the length of
one command, the worker serves the credentials on a Unix socket in a private temporary folder
(0700), and configures, in that command's environment only, a helper that fetches them from
there: a few lines of Python whose arguments are the socket's path. The worker answers only
processes that descend from the git it started (the peer's pid comes from the kernel,
SO_PEERCRED, its ancestry from /proc), so a process a specialist left behind that finds the
socket gets nothing (where the kernel cannot name the peer, off Linux, the private folder
is the only fence). The token is never in an environment, an argument list, a file or git's
configuration: what /proc shows of any process holds the socket's path at most. Credential
helpers configured anywhere else are switched off for that command, and hooks for every git
(activities/git.py), so nothing a specialist planted runs while the token is around.

The push itself runs in a scratch bare repository that borrows the clone's objects
(`objects/info/alternates`), so the git that receives the token reads no configuration a
specialist could have written into the clone's `.git/config` (a proxy, a URL rewrite, a
helper of its own).
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import shutil
import socket
import struct
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from activities.git import git

log = logging.getLogger(__name__)

# The helper git runs: `python -c HELPER SOCKET get|store|erase`, the request on stdin.
HELPER = (
    "import socket, sys\n"
    "sys.stdin.read()\n"
    "if sys.argv[2:3] == ['get']:\n"
    "    s = socket.socket(socket.AF_UNIX)\n"
    "    s.connect(sys.argv[1])\n"
    "    sys.stdout.write(s.makefile().read())\n"
)
# A helper connects after git started; the worker learns git's pid right after the start.
READY_TIMEOUT_S = 30.0
# How far up the parent chain a helper may be from git (git, remote-https, sh, python).
MAX_DEPTH = 16


@dataclass
class TokenHelper:
    """What one git command needs to get the token: `env` for it, `started` told its pid."""

    env: dict[str, str]
    answer: bytes = b""
    served: int = 0
    refused: int = 0
    _gits: set[int] = field(default_factory=set)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    def started(self, pid: int) -> None:
        self._gits.add(pid)
        self._ready.set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            pid = _peer_pid(writer)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), READY_TIMEOUT_S)
            if self._ready.is_set() and (pid is None or _descends(pid, self._gits)):
                writer.write(self.answer)
                self.served += 1
            else:
                self.refused += 1
                log.warning("refused the git credentials to process %s: not our git's", pid)
            await writer.drain()
        finally:
            writer.close()


@asynccontextmanager
async def token_helper(
    url: str, token: str, username: str = "x-access-token"
) -> AsyncIterator[TokenHelper]:
    """Credentials for `url`'s host (http or https) while the block runs; for other URLs
    (ssh, a path) nothing to give: git uses what the worker has."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        yield TokenHelper(env={"GIT_TERMINAL_PROMPT": "0"})
        return
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    private = Path(tempfile.mkdtemp(prefix="coord-git-"))
    path = private / "credentials.sock"
    command = shlex.join([sys.executable, "-c", HELPER, str(path)])
    helper = TokenHelper(
        env={
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_COUNT": "2",
            # An empty value forgets every helper configured before (the user's, the
            # clone's): only ours is asked, and only for this host.
            "GIT_CONFIG_KEY_0": "credential.helper",
            "GIT_CONFIG_VALUE_0": "",
            "GIT_CONFIG_KEY_1": f"credential.{parts.scheme}://{host}.helper",
            "GIT_CONFIG_VALUE_1": f"!{command}",
        },
        answer=f"username={username}\npassword={token}\n".encode(),
    )
    server = await asyncio.start_unix_server(helper.serve, path=str(path))
    try:
        yield helper
    finally:
        server.close()
        await server.wait_closed()
        shutil.rmtree(private, ignore_errors=True)


@asynccontextmanager
async def borrowing_repository(clone: Path) -> AsyncIterator[Path]:
    """A scratch bare repository that sees the clone's objects and nothing else of it."""
    common = await git("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=clone)
    scratch = Path(tempfile.mkdtemp(prefix="coord-push-"))
    try:
        await git("init", "--quiet", "--bare", "--template=", str(scratch))
        info = scratch / "objects" / "info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "alternates").write_text(f"{Path(common) / 'objects'}\n")
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _peer_pid(writer: asyncio.StreamWriter) -> int | None:
    """The connecting process, as the kernel says; None where it cannot say (not Linux)."""
    sock = writer.get_extra_info("socket")
    option = getattr(socket, "SO_PEERCRED", None)
    if sock is None or option is None or not Path("/proc/self/stat").exists():
        return None
    pid, _uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, 12))
    return int(pid)


def _descends(pid: int, ancestors: set[int]) -> bool:
    for _ in range(MAX_DEPTH):
        if pid in ancestors:
            return True
        parent = _parent(pid)
        if parent is None or parent <= 1:
            return False
        pid = parent
    return False


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # After the command name (which may hold spaces and parentheses): state, ppid, ...
    return int(stat[stat.rindex(b")") + 2 :].split()[1])
