"""Running a shell command for an activity: bounded in time and memory, nothing left behind.

Every command (gates, command specialists) goes through `run_shell`:

- It runs as `/bin/sh -c COMMAND`, always sh and never bash even when bash is installed, so
  a plan's command line means the same on every worker (and matches the `shell` specialist,
  which documents `sh -c`). A plan that wants bash writes `bash -c '...'`.
- It gets its own session and process group, so a timeout or a cancellation can kill the
  command together with everything it started (`make` → `pytest` → workers, `server &`).
  After a normal exit, whatever it left running in its group is stopped as well: a gate must
  not leak a daemon into the next attempt. A process that leaves the group on purpose
  (`setsid`, a double fork into a new session) escapes this, except in the jail, whose PID
  namespace ends with the command.
- A plan's command runs in a `Sandbox` (activities/jail.py): in bubblewrap where the worker
  has it, always with a private HOME and temp folder. Its group is recorded in a *slot*
  (activities/process_groups.py), and whatever an earlier attempt of the same slot left
  running is stopped before it starts: a retry never works beside the attempt before it.
  Where the worker has slirp4netns, the jail has a network of its own, without the host's
  loopback (activities/jail_network.py).
- Its combined stdout and stderr stream to a log file on disk while only the last
  `OUTPUT_TAIL_BYTES` stay in memory: a test suite may print gigabytes.
- Inside an activity it heartbeats in the background, so a dead worker is noticed within
  the heartbeat timeout and a Temporal cancel reaches the activity.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import hashlib
import logging
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from temporalio import activity

from activities.heartbeat import heartbeating
from activities.jail import Sandbox, make_private_tmp, remove_private_tmp
from activities.jail_network import JailNetwork
from activities.process_groups import (
    KILL_GRACE_S,
    forget_group,
    group_alive,
    record_group,
    signal_group,
    stop_previous,
)
from activities.running_commands import counted
from coordinator.environment import is_secret_name as is_secret_name  # the rules live there
from coordinator.work import OUTPUT_TAIL_BYTES

logger = logging.getLogger(__name__)

SHELL = "/bin/sh"
# After the command is gone, how long to wait for the end of its output. Only a process that
# left the group (and so survived the kill) while holding the pipe makes this wait run out.
DRAIN_TIMEOUT_S = 5.0
_POLL_S = 0.05

# --- file names -----------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(text: str, max_length: int = 80) -> str:
    """A file name component made of letters, digits, '.', '_' and '-'.

    Names differing only in the characters replaced ("unit tests", "unit/tests") map to the
    same text, so a short hash of the original is appended whenever anything was replaced:
    two gates never share a log file.
    """
    cleaned = _UNSAFE.sub("_", text).strip("._") or "_"
    if cleaned == text and len(cleaned) <= max_length:
        return cleaned
    digest = hashlib.sha1(text.encode("utf-8", errors="surrogatepass")).hexdigest()[:6]
    return f"{cleaned[: max_length - 7]}-{digest}"


def retry_suffix() -> str:
    """The log file suffix for this Temporal attempt of the activity: ".try<n>" on a retry,
    so a retry writes its log beside the failed attempt's rather than over it; else empty."""
    if not activity.in_activity():
        return ""
    attempt = activity.info().attempt
    return f".try{attempt}" if attempt > 1 else ""


# --- running --------------------------------------------------------------------------------


class CommandNotStartedError(RuntimeError):
    """The shell could not be started. `permanent`: a retry on this worker cannot help
    (working directory missing, environment too large for exec, a NUL byte in it)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class ProcessOutcome:
    exit_code: int | None  # None when killed at the timeout; negative: killed by that signal
    timed_out: bool
    duration_s: float
    output_tail: str  # the last OUTPUT_TAIL_BYTES of combined stdout and stderr, decoded
    log_path: Path  # the full output
    output_bytes: int
    visible_output: bool  # anything other than whitespace was printed


class _Capture(asyncio.Protocol):
    """Copies the command's output to the log file and keeps its last bytes."""

    def __init__(self, log: IO[bytes]) -> None:
        self.log = log
        self.tail = bytearray()
        self.size = 0
        self.visible = False
        self.log_error: OSError | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        if self.log_error is None:
            try:
                # A blocking write of one read (<= 256 KB) to the page cache is quicker than
                # a thread hop.
                self.log.write(data)
            except OSError as err:  # a full disk: reported once the command is stopped
                self.log_error = err
        self.size += len(data)
        if not self.visible and data.strip():
            self.visible = True
        self.tail += data
        if len(self.tail) > 2 * OUTPUT_TAIL_BYTES:
            del self.tail[:-OUTPUT_TAIL_BYTES]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def tail_text(self) -> str:
        tail = bytes(self.tail[-OUTPUT_TAIL_BYTES:])
        if self.size > len(tail):
            # The cut may fall inside a UTF-8 character: drop its continuation bytes.
            tail = tail.lstrip(bytes(range(0x80, 0xC0)))
        return tail.decode("utf-8", errors="replace")


# Long for its docstring (the contract every caller relies on); the body is 30 lines.
async def run_shell(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdin: str | None,
    timeout: float,
    log_path: Path,
    heartbeat_details: Sequence[Any] = (),
    shell: str = SHELL,
    heartbeat: bool = True,
    sandbox: Sandbox | None = None,
    slot: Path | None = None,
) -> ProcessOutcome:
    """Run `command` with `sh -c` in `cwd` and return how it ended.

    `env` is the complete environment (see `command_env`). `stdin` is written to the
    command's standard input, which is closed afterwards; None gives it /dev/null, so nothing
    ever waits on a terminal. The log file is created (with its folders) or overwritten.
    `shell` replaces sh for callers that promise another one (the Claude bash tool runs
    bash). `heartbeat=False` leaves heartbeats to the caller, whose details must not be
    overwritten (the Claude loop heartbeats its transcript position).

    `sandbox` runs it in the jail (when the sandbox has bwrap) with HOME and TMPDIR in a
    private temp folder (the sandbox's, or one made for this command and removed after);
    None runs it as it is. `slot` is the folder where the command's process group is
    recorded: groups recorded there by earlier commands that still run are stopped first.

    On timeout the process group is killed (SIGTERM, `KILL_GRACE_S`, SIGKILL) and the outcome
    says `timed_out`. On cancellation it is killed the same way, then CancelledError is
    re-raised. Raises CommandNotStartedError when the shell cannot be started, OSError when
    the log cannot be written.
    """
    own_tmp = None
    try:
        if sandbox is not None and sandbox.tmp is None:
            own_tmp = make_private_tmp()
            sandbox = sandbox.with_tmp(own_tmp)
        run = functools.partial(
            _launch,
            command,
            cwd=cwd,
            env=env,
            stdin=stdin,
            timeout=timeout,
            log_path=log_path,
            heartbeat_details=heartbeat_details if heartbeat else None,
            shell=shell,
            sandbox=sandbox,
            slot=slot,
        )
        outcome = await run()
        for _ in range(JAIL_LAUNCHES - 1):
            if sandbox is None or not jail_did_not_start(outcome):
                break
            # bwrap failed while building the jail (seen under load: "bwrap: loopback:
            # Failed RTM_NEWADDR"): the command never ran, so launching again is safe.
            logger.warning(
                "%s: the jail did not start (%s); launching again", cwd, outcome.output_tail.strip()
            )
            outcome = await run()
        return outcome
    finally:
        if own_tmp is not None:
            await asyncio.shield(asyncio.to_thread(remove_private_tmp, own_tmp))


JAIL_LAUNCHES = 3  # launches of a jail that bwrap itself failed to set up, then its error stands


def jail_did_not_start(outcome: ProcessOutcome) -> bool:
    """bwrap failed to set up the jail's loopback, so the command never ran: bwrap exits 1
    after printing one line `bwrap: loopback: ...` and nothing else. A command that prints
    exactly such a line and exits 1 would be run again, up to JAIL_LAUNCHES times."""
    text = outcome.output_tail.strip()
    return (
        outcome.exit_code == 1
        and not outcome.timed_out
        and text.startswith("bwrap: loopback: ")
        and "\n" not in text
        and outcome.output_bytes < 1024
    )


async def _launch(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdin: str | None,
    timeout: float,
    log_path: Path,
    heartbeat_details: Sequence[Any] | None,
    shell: str,
    sandbox: Sandbox | None,
    slot: Path | None,
) -> ProcessOutcome:
    """One launch of `command`: in the jail (with its own network when the sandbox has one)
    or as it is; counted as running meanwhile (activities/running_commands.py)."""
    network = None
    try:
        if sandbox is not None:
            assert sandbox.tmp is not None
            env = sandbox.env(env, sandbox.tmp)
            if sandbox.isolates_network:
                assert sandbox.slirp4netns is not None
                network = JailNetwork(sandbox.slirp4netns)
            net = network.jail_fds if network is not None else None
            argv = sandbox.argv([shell, "-c", command], cwd=cwd, net=net)
        else:
            argv = [shell, "-c", command]
        with counted():
            return await _run(
                argv,
                cwd=cwd,
                env=env,
                stdin=stdin,
                timeout=timeout,
                log_path=log_path,
                heartbeat_details=heartbeat_details,
                slot=slot,
                network=network,
                contained=sandbox is not None and sandbox.contains_processes,
            )
    finally:
        if network is not None:
            await network.stop()  # closes its pipes should the jail never have started


# One function on purpose: the pipes, the spawn, the process-group record, the timeout and the
# cleanup are opened in one order and must be closed in the reverse order on every path
# (exit, timeout, cancel, a cancel during the cleanup); split, that order would be scattered.
async def _run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdin: str | None,
    timeout: float,
    log_path: Path,
    heartbeat_details: Sequence[Any] | None,
    slot: Path | None,
    network: JailNetwork | None = None,
    contained: bool = False,
) -> ProcessOutcome:
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        if slot is not None and (stopped := await stop_previous(slot)):
            groups = ", ".join(str(pgid) for pgid in stopped)
            _note(log, f"stopped process group {groups}, left running by an earlier attempt")
        # Our own pipes rather than asyncio's: Process.wait() waits for its pipes to close
        # too, which a background grandchild holding stdout would delay forever.
        out_r, out_w = os.pipe()
        in_r, in_w = os.pipe() if stdin is not None else (None, None)
        pass_fds = network.jail_fds if network is not None else ()
        try:
            proc = await _spawn(argv, cwd, env, stdin=in_r, stdout=out_w, pass_fds=pass_fds)
        except BaseException:
            for fd in (out_r, in_w):
                if fd is not None:
                    os.close(fd)
            raise
        finally:
            for fd in (out_w, in_r):
                if fd is not None:
                    os.close(fd)  # the child has its copies
            if network is not None:
                network.started()

        capture = _Capture(log)
        reader, _ = await loop.connect_read_pipe(lambda: capture, os.fdopen(out_r, "rb", 0))
        writer = None
        if in_w is not None and stdin is not None:
            # Buffered by the transport and written as the command reads; close() sends EOF
            # once all is written. A command that exits without reading is fine.
            writer, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(in_w, "wb", 0))
            writer.write(stdin.encode(errors="replace"))
            writer.close()

        timed_out = False
        record = None
        try:
            if slot is not None:
                record = record_group(slot, proc.pid)
            async with _heartbeats(heartbeat_details):
                try:
                    async with asyncio.timeout(timeout):
                        if network is not None and (problem := await network.connect()):
                            _note(log, f"the command has no network: {problem}")
                        await proc.wait()
                except TimeoutError:
                    timed_out = True
                    _note(log, f"timed out after {timeout:g} s: stopping the process group")
        except asyncio.CancelledError:
            _note(log, "cancelled: stopping the process group")
            raise
        finally:
            try:
                # Also after a normal exit: children it left running in its group go too.
                await _stop_group(proc, contained=contained)
                if network is not None:
                    await network.stop()  # its slirp4netns: never beyond the jail
                if record is not None:
                    forget_group(record)
                await _drain(capture, log)
            finally:  # even when cancelled again meanwhile
                if not capture.closed.done():
                    reader.close()
                if writer is not None and writer.get_write_buffer_size():
                    writer.abort()  # input nobody will read any more
        if capture.log_error is not None:
            raise capture.log_error

    return ProcessOutcome(
        exit_code=None if timed_out else proc.returncode,
        timed_out=timed_out,
        duration_s=round(time.monotonic() - started, 3),
        output_tail=capture.tail_text(),
        log_path=log_path,
        output_bytes=capture.size,
        visible_output=capture.visible,
    )


async def _spawn(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    *,
    stdin: int | None,
    stdout: int,
    pass_fds: Sequence[int] = (),
) -> asyncio.subprocess.Process:
    program = argv[0]
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL if stdin is None else stdin,
            stdout=stdout,
            stderr=stdout,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
    except ValueError as err:  # a NUL byte in the command or the environment
        raise CommandNotStartedError(f"cannot run {program}: {err}", permanent=True) from err
    except OSError as err:
        permanent = err.errno in (errno.ENOENT, errno.ENOTDIR, errno.E2BIG, errno.EACCES)
        reason = err.strerror or str(err)
        if err.errno == errno.E2BIG:  # one variable over 128 KiB, or all over ~2 MiB
            reason = "the environment or the command line is too large"
        raise CommandNotStartedError(
            f"cannot run {program} in {cwd}: {reason}", permanent=permanent
        ) from err


@contextlib.asynccontextmanager
async def _heartbeats(details: Sequence[Any] | None) -> AsyncIterator[None]:
    """Heartbeats with `details` while the command runs; None: the caller heartbeats."""
    if details is None or not activity.in_activity():
        yield
        return
    # Beat well within the heartbeat timeout the workflow chose (the SDK throttles anyway).
    every = 5.0
    heartbeat_timeout = activity.info().heartbeat_timeout
    if heartbeat_timeout:
        every = max(0.2, min(every, heartbeat_timeout.total_seconds() / 3))
    async with heartbeating(*details, every=every):
        yield


def _note(log: IO[bytes], message: str) -> None:
    """A line for the human reading the log; not counted as the command's output."""
    with contextlib.suppress(OSError):
        log.write(f"\n[coord] {message}\n".encode())


async def _drain(capture: _Capture, log: IO[bytes]) -> None:
    """Wait for the end of the output, which comes at once unless a process that escaped the
    group holds the pipe: then give up after `DRAIN_TIMEOUT_S`."""
    done, _ = await asyncio.wait({capture.closed}, timeout=DRAIN_TIMEOUT_S)
    if not done:
        _note(log, "output still open after the command ended (a process left its group)")


async def _stop_group(proc: asyncio.subprocess.Process, *, contained: bool = False) -> None:
    """Stop the command's process group: SIGTERM, a grace period, SIGKILL; reap the shell.

    `contained`: the command ran in a jail with its own PID namespace that dies with bwrap
    (`Sandbox.contains_processes`). Once bwrap exited, the kernel kills whatever is left in
    there, in or out of the group, so the scan of /proc for the group is skipped.

    Runs to the end even when cancelled meanwhile (SIGKILL at once, then re-raise), so a
    cancelled activity never leaves its processes behind.
    """
    pgid = proc.pid  # start_new_session: the shell leads its own group
    if proc.returncode is not None and (contained or not group_alive(pgid)):
        return  # the usual case: the command exited and took its children with it
    cancelled = False
    signal_group(pgid, signal.SIGTERM)
    try:
        deadline = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < deadline:
            if proc.returncode is not None and not group_alive(pgid):
                return
            await asyncio.sleep(_POLL_S)
    except asyncio.CancelledError:
        cancelled = True
    signal_group(pgid, signal.SIGKILL)
    try:
        # SIGKILL cannot be ignored; the shell is reaped in a moment.
        await asyncio.shield(proc.wait())
    except asyncio.CancelledError:
        cancelled = True
    if cancelled:
        raise asyncio.CancelledError
