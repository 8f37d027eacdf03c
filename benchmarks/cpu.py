"""CPU time from /proc: what a run cost the machine. On a small, shared machine it is steadier
than wall time, and it says which process paid: the worker, the commands it ran, the server."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from benchmarks.stats import median

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuUse:
    """Seconds of CPU (user and system) since some start."""

    worker: float  # the worker process (the benchmark's own process for the bare DAG)
    commands: float  # the worker's finished children: git, jails, plan commands
    server: float

    @property
    def total(self) -> float:
        return self.worker + self.commands + self.server

    def __sub__(self, other: CpuUse) -> CpuUse:
        return CpuUse(
            self.worker - other.worker,
            self.commands - other.commands,
            self.server - other.server,
        )


def cpu_use(worker_pid: int, server_pid: int) -> CpuUse:
    own, children = _times(worker_pid)
    server, _ = _times(server_pid)
    return CpuUse(own, children, server)


def _times(pid: int) -> tuple[float, float]:
    """(the process's own CPU seconds, its waited-for children's), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime) / _TICKS, (cutime + cstime) / _TICKS


def cpu_text(runs: list[CpuUse], tasks: int, *, commands: bool = True) -> str:
    def ms(values: list[float]) -> str:
        return f"{median(values) * 1000 / tasks:.1f}"

    parts = [f"worker {ms([c.worker for c in runs])}"]
    if commands:
        parts.append(f"commands {ms([c.commands for c in runs])}")
    parts.append(f"server {ms([c.server for c in runs])}")
    return f"{ms([c.total for c in runs])} ms ({', '.join(parts)})"
