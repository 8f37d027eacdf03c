"""A jailed command's own network: slirp4netns, outbound only, never the host's loopback.

The jail (`Sandbox.argv` with `net`) runs in a network namespace of its own
(`bwrap --unshare-net`), which has nothing but its own loopback. `JailNetwork` connects it to
the outside, the way rootless containers do:

1. bwrap reports the pid of the process in the new namespaces on its `--info-fd` (JSON
   `{"child-pid": N, ...}`) and holds the command back until its `--block-fd` is readable;
2. `slirp4netns --configure --disable-host-loopback N tap0` gives that namespace a `tap0`
   interface (10.0.2.100, gateway 10.0.2.2, DNS forwarder 10.0.2.3) whose traffic it makes on
   the host's behalf, except to the host's loopback: 127.0.0.1:7233 inside is the jail's own
   (empty) loopback, and 10.0.2.2 does not lead to the host's;
3. once slirp4netns says it is ready (`--ready-fd`), the command is let go.

slirp4netns is a child of the worker and ends with the jail: `stop` (in the same `finally`
that reaps the jail) closes its `--exit-fd`; a reaper in the background waits for it to exit
and kills it should it linger. Should the
worker die, the kernel closes that fd and slirp4netns exits on its own.

Whatever goes wrong here, the command still runs in its own network namespace, only
without connectivity: it never falls back to the host's network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile

from activities.process_groups import KILL_GRACE_S

TAP = "tap0"
MTU = 65520
# How long the readiness of slirp4netns may take before the command goes on without network.
READY_TIMEOUT_S = 30.0


class JailNetwork:
    """The pipes between the worker, one jail and its slirp4netns. Make it before starting
    the jail, give the jail `jail_fds` (in `Sandbox.argv(net=...)` and in `pass_fds`), call
    `started` once it runs, `connect` to wire it, and `stop` always."""

    def __init__(self, slirp4netns: str) -> None:
        self.slirp4netns = slirp4netns
        self._info_r, self._info_w = os.pipe()
        self._block_r, self._block_w = os.pipe()
        self._exit_w: int | None = None
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def jail_fds(self) -> tuple[int, int]:
        """(info fd, block fd): the jail's ends, for `Sandbox.argv(net=...)` and pass_fds."""
        return self._info_w, self._block_r

    def started(self) -> None:
        """The jail has its copies of its ends (or did not start): close ours."""
        for fd in (self._info_w, self._block_r):
            _close(fd)
        self._info_w = self._block_r = -1

    async def connect(self) -> str | None:
        """Connect the jail's network and let its command go. Returns None, or what went
        wrong (the command then runs without network)."""
        try:
            return await self._connect()
        finally:
            self._release()

    async def _connect(self) -> str | None:
        info_r, self._info_r = self._info_r, -1
        data = await _read_pipe(info_r, None)
        try:
            pid = int(json.loads(data)["child-pid"])
        except (ValueError, KeyError, TypeError):
            return "bwrap did not report the jail's pid (it ended before its command started)"
        # slirp4netns's messages: kept in a file (a pipe nobody reads could fill and stall
        # it), read only when it fails. It keeps its own copy of the file.
        with tempfile.TemporaryFile() as errors:
            ready = await self._start_slirp(pid, errors.fileno())
            if ready == b"1":
                return None
            errors.seek(0)
            said = errors.read().decode(errors="replace").strip().splitlines()
        if self._proc is None:
            return said[0] if said else f"cannot start {self.slirp4netns}"
        reason = said[-1] if said else "no message"
        return f"slirp4netns did not connect the jail's network: {reason}"

    async def _start_slirp(self, pid: int, errors: int) -> bytes:
        """Start slirp4netns for the namespaces of `pid`; b"1" once it is ready."""
        ready_r, ready_w = os.pipe()
        exit_r, exit_w = os.pipe()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                self.slirp4netns,
                "--configure",
                f"--mtu={MTU}",
                "--disable-host-loopback",
                "--ready-fd",
                str(ready_w),
                "--exit-fd",
                str(exit_r),
                str(pid),
                TAP,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=errors,
                pass_fds=(ready_w, exit_r),
                # Not in the jail's process group, nor in the worker's terminal's.
                start_new_session=True,
            )
        except (OSError, ValueError) as err:
            _close(ready_r)
            _close(exit_w)
            os.write(errors, f"cannot start {self.slirp4netns}: {err}\n".encode())
            return b""
        finally:
            _close(ready_w)
            _close(exit_r)
        self._exit_w = exit_w
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                return await _read_pipe(ready_r, 1)
        except TimeoutError:
            return b""

    def _release(self) -> None:
        """Let the jail's command start (bwrap reads a byte, or the end of the pipe)."""
        if self._block_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._block_w, b"1")
            _close(self._block_w)
            self._block_w = -1

    async def stop(self) -> None:
        """After the jail is gone: close every pipe, which ends slirp4netns (reaped in the
        background, killed should it linger). Never waits, so a cancel cannot cut it short."""
        for fd in (self._info_r, self._info_w, self._block_r, self._block_w):
            _close(fd)
        self._info_r = self._info_w = self._block_r = self._block_w = -1
        if self._exit_w is not None:
            _close(self._exit_w)  # slirp4netns exits when its --exit-fd closes
            self._exit_w = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            # It exits on its own now; waiting for that here would cost every jailed command
            # some 20-30 ms. A reaper does, and kills it after a grace period.
            task = asyncio.get_running_loop().create_task(_reap(proc))
            _REAPERS.add(task)
            task.add_done_callback(_REAPERS.discard)


# The reapers of slirp4netns processes whose jail is gone (referenced until they are done).
_REAPERS: set[asyncio.Task[None]] = set()


async def _reap(proc: asyncio.subprocess.Process) -> None:
    """Wait for a slirp4netns whose --exit-fd is closed; SIGKILL should it linger."""
    try:
        await asyncio.wait_for(proc.wait(), KILL_GRACE_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def _read_pipe(fd: int, limit: int | None) -> bytes:
    """All of a pipe (None), or up to `limit` bytes; empty at its end. Closes `fd`."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0)
    )
    try:
        return await (reader.read() if limit is None else reader.read(limit))
    finally:
        transport.close()


def _close(fd: int) -> None:
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)
