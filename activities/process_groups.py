"""Process groups: whether one still runs, stopping one, and the record that lets a new attempt
stop what the attempt before it left running.

Every command runs in a process group of its own (`activities.process`). A command can be
left running by an attempt that is no longer awaited: the activity timed out on the server
while its worker lived on (a blocked event loop, a paused or partitioned worker), or the
worker died without the jail to take its processes along. Its retry would then work in the
same worktree at the same time. So each command's group is recorded in a *slot*, a folder
that belongs to one line of work (a task's specialist, one gate, one setup command), whose
commands never run side by side; `stop_previous` stops every group still recorded there
before the next command of the slot starts.

A record names the group, the start time of its leader and the boot it ran in: a group of
another boot, or a number the kernel has since given to another process, is never signalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

# How long a process group gets between SIGTERM and SIGKILL.
KILL_GRACE_S = 2.0
_POLL_S = 0.05
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs.

    Zombies do not count: an orphan is reaped by PID 1, and in a container whose PID 1 is not
    an init it never is, although it is long dead.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # no /proc (macOS): trust the signal check
    for entry in entries:
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None and int(fields[2]) == pgid and _running(fields):
            return True
    return False


def process_running(pid: int) -> bool:
    """Whether the process `pid` runs (zombies do not count, as for `group_alive`)."""
    fields = _stat_fields(pid)
    return fields is not None and _running(fields)


def _running(fields: list[bytes]) -> bool:
    return fields[0] not in (b"Z", b"X")


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces and
    parentheses): state, ppid, pgrp, ..., starttime at index 19. None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2 :].split()


def start_time(pid: int) -> str | None:
    """When the process started, in clock ticks since boot: with the boot, its identity."""
    fields = _stat_fields(pid)
    return fields[19].decode() if fields is not None and len(fields) > 19 else None


def boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


async def stop_group(pgid: int, *, grace: float = KILL_GRACE_S) -> None:
    """SIGTERM, up to `grace` seconds for the group to go, then SIGKILL; returns once no
    process of the group runs (or after a few seconds more, for an unkillable one)."""
    signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while group_alive(pgid) and time.monotonic() < deadline:
        await asyncio.sleep(_POLL_S)
    signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0  # SIGKILL is not ignored: this takes a moment
    while group_alive(pgid) and time.monotonic() < deadline:
        await asyncio.sleep(_POLL_S)


# --- the records of a slot -------------------------------------------------------------------


@dataclass(frozen=True)
class GroupRecord:
    path: Path
    pgid: int
    leader_start: str | None
    boot: str

    def still_running(self) -> bool:
        """The recorded group, not another one that got its number since."""
        if self.boot != boot_id():
            return False
        leader = start_time(self.pgid)
        if leader is not None and leader != self.leader_start:
            return False  # the number went to a new process since (then it leads the group)
        return group_alive(self.pgid)


def record_group(slot: Path, pgid: int) -> Path:
    """Note that a command of `slot` runs in group `pgid`; returns the record to remove."""
    slot.mkdir(parents=True, exist_ok=True)
    path = slot / f"group-{pgid}-{uuid.uuid4().hex[:8]}.json"
    data = {"pgid": pgid, "leader_start": start_time(pgid), "boot": boot_id()}
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(data))
    partial.replace(path)
    return path


def forget_group(record: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        record.unlink()


def _records(slot: Path) -> list[GroupRecord]:
    found = []
    with contextlib.suppress(FileNotFoundError):
        for path in sorted(slot.glob("group-*.json")):
            try:
                data = json.loads(path.read_text())
                found.append(
                    GroupRecord(path, int(data["pgid"]), data["leader_start"], str(data["boot"]))
                )
            except (OSError, ValueError, KeyError, TypeError):
                forget_group(path)  # torn by a crash while it was written: nothing to stop
    return found


async def stop_previous(slot: Path) -> list[int]:
    """Stop every group an earlier command of `slot` left running; their numbers."""
    stopped = []
    for record in _records(slot):
        if record.still_running():
            await stop_group(record.pgid)
            stopped.append(record.pgid)
        forget_group(record.path)
    return stopped
