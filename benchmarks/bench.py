"""What every benchmark section shares: the plan shapes, the options, the result rows and the
`Bench` (client, worker processes, results) handed to each section."""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client

from benchmarks.cpu import CpuUse, cpu_use
from benchmarks.infra import Coord, ExecutionRun, WorkerProcess, Workers, shell_plan

MAX_PARALLEL = 8


def layers(count: int, width: int) -> list[list[str]]:
    return [[f"t{n}-{i}" for i in range(width)] for n in range(count)]


@dataclass(frozen=True)
class Shape:
    label: str
    slug: str  # for execution ids
    layers: list[list[str]]

    @property
    def tasks(self) -> int:
        return sum(len(layer) for layer in self.layers)


def shape(count: int, width: int) -> Shape:
    if width == 1:
        return Shape(f"chain of {count}", f"chain{count}", layers(count, 1))
    return Shape(f"{count} layers x {width}", f"{count}x{width}", layers(count, width))


CHAIN_50 = shape(50, 1)
LAYERS_8X8 = shape(8, 8)
LAYERS_20X50 = shape(20, 50)  # 1,000 tasks


@dataclass
class Row:
    section: str
    measurement: str
    result: str
    target: str = ""


@dataclass
class Options:
    quick: bool
    repeat: int
    shapes: list[Shape]
    memory_timeout: float


@dataclass
class Bench:
    """What every section shares: the server's client, the worker processes, the results."""

    client: Client
    server_pid: int
    workers: Workers
    worker: WorkerProcess
    coord: Coord
    repo: Path
    scratch: Path
    options: Options
    rows: dict[str, list[Row]] = field(default_factory=lambda: defaultdict(list))
    # Completed no-op executions by shape label: the history section reads them.
    noop_runs: dict[str, list[ExecutionRun]] = field(default_factory=lambda: defaultdict(list))

    def add(self, section: str, measurement: str, result: str, target: str = "") -> None:
        self.rows[section].append(Row(section, measurement, result, target))
        print(f"  {section}: {measurement}: {result}", flush=True)

    def execution_id(self, kind: str) -> str:
        return f"bench-{kind}-{secrets.token_hex(3)}"

    async def run_noop(self, s: Shape) -> ExecutionRun:
        plan = shell_plan(f"bench-{s.slug}", s.layers, "true", self.repo, max_parallel=MAX_PARALLEL)
        run = await self.run_plan(plan, s.slug, s.tasks)
        if run.ok:
            self.noop_runs[s.label].append(run)
        return run

    async def run_plan(self, plan: dict[str, Any], kind: str, tasks: int) -> ExecutionRun:
        """Run `plan` to its end, with what it cost the worker, its commands and the server."""
        before = self.cpu()
        run = await self.coord.run(plan, self.execution_id(kind), timeout=timeout_for(tasks))
        run.cpu = self.cpu() - before
        return run

    def cpu(self) -> CpuUse:
        """CPU so far of the worker (and its commands) and of the server."""
        return cpu_use(self.worker.pid, self.server_pid)

    async def replace_worker(self, *, kill: bool = False) -> WorkerProcess:
        if kill:
            self.workers.kill(self.worker)
        else:
            self.workers.stop(self.worker)
        self.worker = await self.workers.start()
        return self.worker


def timeout_for(tasks: int) -> float:
    """Generous: a run this slow is a finding in itself, reported as such."""
    return 120.0 + 3.0 * tasks


def failed(runs: list[ExecutionRun]) -> str | None:
    bad = [r for r in runs if not r.ok]
    if not bad:
        return None
    r = bad[0]
    return f"NOT COMPLETE: {r.execution_id} {r.status} ({r.tasks_done}/{r.tasks} tasks passed)"
