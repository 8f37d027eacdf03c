"""Background and foreground child processes with a pid file: the machinery behind
`coord server [--detach|stop]` and `coord worker [--detach|stop]`.

Each process has a name and a state folder holding `<name>.pid` (JSON: pid, argv, start time,
caller info), `<name>.log` (output of detached runs, appended) and `<name>.lock` (serialises
concurrent starts). A pid file is trusted only while its process is alive and is the same
process (Linux: start time from /proc), so a stale file or a recycled pid never fools us.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import gc
import os
import signal
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import IO, Any, TypeVar

from pydantic import BaseModel, JsonValue

Ready = Callable[[int], bool]
"""Readiness probe: given the child's pid, True once it serves. Called until True."""

POLL_INTERVAL = 0.25

T = TypeVar("T")

# Popen objects of children we started: kept so they are reaped by poll() (no zombies that
# look alive) and never garbage-collected while running (no ResourceWarning).
_children: dict[int, subprocess.Popen[bytes]] = {}


class ProcessError(RuntimeError):
    """A child process could not be started or stopped; the message says why."""


class AlreadyRunningError(ProcessError):
    def __init__(self, record: ProcessRecord) -> None:
        self.record = record
        super().__init__(f"{record.name} is already running (pid {record.pid})")


class ProcessRecord(BaseModel):
    """The content of a pid file."""

    name: str
    pid: int
    own_session: bool  # True: signal the whole process group (pgid == pid)
    argv: list[str]
    log_file: Path | None = None  # None: foreground, output went to the terminal
    started_at: float
    start_ticks: int | None = None  # /proc start time, guards against pid reuse
    info: dict[str, JsonValue] = {}


def pid_file(name: str, state_dir: Path) -> Path:
    return state_dir / f"{name}.pid"


def log_file(name: str, state_dir: Path) -> Path:
    return state_dir / f"{name}.log"


def read_pid(name: str, state_dir: Path) -> ProcessRecord | None:
    """The record of the live process `name`, or None (a stale pid file is removed)."""
    path = pid_file(name, state_dir)
    try:
        record = ProcessRecord.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if is_alive(record):
        return record
    _remove_pid_file(path, record.pid)
    return None


def is_alive(record: ProcessRecord) -> bool:
    return _alive(record.pid, record.start_ticks)


def start_detached(
    name: str,
    argv: list[str],
    state_dir: Path,
    ready: Ready | None = None,
    *,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    info: Mapping[str, JsonValue] | None = None,
) -> ProcessRecord:
    """Start `argv` in its own session (it outlives us and a terminal hang-up), output appended
    to `<state_dir>/<name>.log`, and wait until `ready(pid)`. Raises AlreadyRunningError when
    `name` already runs, ProcessError (with the log's tail) when it dies or never gets ready."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_file(name, state_dir)
    with _start_lock(name, state_dir):
        if (existing := read_pid(name, state_dir)) is not None:
            raise AlreadyRunningError(existing)
        with log_path.open("ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {argv}\n".encode())
            log.flush()
            offset = log.tell()
            proc = _spawn(argv, stdout=log, new_session=True, env=env, cwd=cwd)
        record = _write_record(name, state_dir, proc, argv, log_path, own_session=True, info=info)
        try:
            _wait_ready(proc, ready, timeout)
        except BaseException as exc:  # also Ctrl-C while waiting: leave nothing half-started
            _terminate(record, grace=5.0)
            _remove_pid_file(pid_file(name, state_dir), proc.pid)
            if isinstance(exc, ProcessError):
                raise ProcessError(f"{exc}{_log_tail(log_path, offset)}") from None
            raise
    return record


def run_foreground(
    name: str,
    argv: list[str],
    state_dir: Path,
    ready: Ready | None = None,
    *,
    on_ready: Callable[[ProcessRecord], None] | None = None,
    timeout: float = 30.0,
    grace: float = 10.0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    info: Mapping[str, JsonValue] | None = None,
) -> int:
    """Run `argv` attached to the terminal until it exits or we are interrupted (Ctrl-C,
    SIGTERM, SIGHUP), then stop it cleanly. A pid file is kept meanwhile so `stop_detached`
    from another shell and a second start see it. Returns 0 after an interruption, else the
    child's exit code."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with _start_lock(name, state_dir):
        if (existing := read_pid(name, state_dir)) is not None:
            raise AlreadyRunningError(existing)
        # Same process group: a terminal's Ctrl-C reaches the child directly, as users expect.
        proc = _spawn(argv, stdout=None, new_session=False, env=env, cwd=cwd)
        record = _write_record(name, state_dir, proc, argv, None, own_session=False, info=info)
    try:
        with _interrupts_as_keyboard_interrupt():
            try:
                _wait_ready(proc, ready, timeout)
                if on_ready is not None:
                    on_ready(record)
                return proc.wait()
            except KeyboardInterrupt:
                _terminate(record, grace=grace, first_signal=signal.SIGINT)
                return 0
            except BaseException:
                _terminate(record, grace=grace)
                raise
    finally:
        _children.pop(proc.pid, None)
        _remove_pid_file(pid_file(name, state_dir), proc.pid)


def stop_detached(name: str, state_dir: Path, *, grace: float = 10.0) -> bool:
    """Stop `name` (SIGTERM, then SIGKILL after `grace` seconds) and remove its pid file.
    False when nothing was running: stopping twice is fine."""
    record = read_pid(name, state_dir)
    if record is None:
        return False
    _terminate(record, grace=grace)
    _remove_pid_file(pid_file(name, state_dir), record.pid)
    return True


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run an async readiness probe from sync code, even when called inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        in_loop = False
    else:
        in_loop = True
    try:
        if not in_loop:
            return asyncio.run(coro)
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, coro).result()
    finally:
        # Temporal SDK clients sit in reference cycles; left to the interpreter's final
        # collection, their Rust side is torn down mid-finalization and aborts the process about
        # one exit in ten ("PyGILState_Release", temporalio/sdk-python#300). Collect them now.
        gc.collect()


# --------------------------------------------------------------------------- internals


def _spawn(
    argv: list[str],
    *,
    stdout: IO[bytes] | None,
    new_session: bool,
    env: Mapping[str, str] | None,
    cwd: Path | None,
) -> subprocess.Popen[bytes]:
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout is not None else None,
            start_new_session=new_session,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
    except OSError as exc:
        raise ProcessError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    _children[proc.pid] = proc
    return proc


def _write_record(
    name: str,
    state_dir: Path,
    proc: subprocess.Popen[bytes],
    argv: list[str],
    log_path: Path | None,
    *,
    own_session: bool,
    info: Mapping[str, JsonValue] | None,
) -> ProcessRecord:
    record = ProcessRecord(
        name=name,
        pid=proc.pid,
        own_session=own_session,
        argv=argv,
        log_file=log_path,
        started_at=time.time(),
        start_ticks=_start_ticks(proc.pid),
        info=dict(info or {}),
    )
    path = pid_file(name, state_dir)
    tmp = path.with_suffix(".pid.tmp")
    tmp.write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)  # atomic: a reader never sees half a record
    return record


def _wait_ready(proc: subprocess.Popen[bytes], ready: Ready | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if (code := proc.poll()) is not None:
            raise ProcessError(f"it exited with code {code} while starting")
        if ready is None or ready(proc.pid):
            return
        if time.monotonic() >= deadline:
            raise ProcessError(f"not ready after {timeout:g} s")
        time.sleep(POLL_INTERVAL)


def _terminate(
    record: ProcessRecord, *, grace: float, first_signal: signal.Signals = signal.SIGTERM
) -> None:
    """Ask politely, wait `grace` seconds, then SIGKILL; returns once the process is gone."""
    for sig, wait in ((first_signal, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if record.own_session:
                os.killpg(record.pid, sig)
            else:
                os.kill(record.pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(record.pid, record.start_ticks):
                return
            time.sleep(0.05)
    if _alive(record.pid, record.start_ticks):
        raise ProcessError(f"{record.name} (pid {record.pid}) did not stop, even after SIGKILL")


def _alive(pid: int, start_ticks: int | None) -> bool:
    if (proc := _children.get(pid)) is not None:
        if proc.poll() is not None:  # reaps our own child
            del _children[pid]
            return False
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else: the start time check below decides
    stat = _proc_stat(pid)
    if stat is None:
        return True  # no /proc (macOS): trust the signal check
    state, ticks = stat
    if state == "Z":
        return False  # exited, waiting for its parent to reap it
    return start_ticks is None or ticks == start_ticks


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) from /proc/<pid>/stat, None without /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (2nd field) may hold spaces and parentheses: split after its last ")".
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _start_ticks(pid: int) -> int | None:
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def _remove_pid_file(path: Path, pid: int) -> None:
    """Remove the pid file if it still names `pid` (a newer start may have replaced it)."""
    try:
        record = ProcessRecord.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = None
    if record is None or record.pid == pid:
        path.unlink(missing_ok=True)


def _log_tail(path: Path, offset: int, lines: int = 20) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    tail = text.strip().splitlines()[-lines:]
    if not tail:
        return f" (log {path} is empty)"
    return f"; last lines of {path}:\n" + "\n".join(f"  {line}" for line in tail)


@contextlib.contextmanager
def _start_lock(name: str, state_dir: Path) -> Iterator[None]:
    with (state_dir / f"{name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def _interrupts_as_keyboard_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP stop a foreground run like Ctrl-C does, so the child is stopped too
    instead of being orphaned."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    except ValueError:  # not the main thread: leave signals alone
        previous = {}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
