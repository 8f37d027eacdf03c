"""The `cli` section: how long a `coord` command takes to start, against `python -c pass`.

Every command a person types while an execution runs (status, list, resolve, watch, report)
should answer at once: its start-up is the interpreter plus what the command imports. Each is
timed as a fresh process, `--help` (start-up alone) and `coord list` against the benchmark's
server (start-up, one connection, one visibility query): wall time, which a loaded machine
stretches, and CPU time, which it does not (much).
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmarks.infra import ROOT

if TYPE_CHECKING:
    from benchmarks.sections import Bench

COMMANDS = ("status", "list", "resolve", "watch", "report")
SAMPLES = 7  # per command: the median of fresh processes (3 with --quick)
TARGET_S = 0.5


@dataclass
class Sample:
    wall_s: float  # start to exit, as a person waits for it
    cpu_s: float  # user + system time of the process: what a busy machine cannot blur


async def timed(argv: list[str], env: dict[str, str] | None) -> Sample:
    """One fresh process, its output thrown away. Commands run one at a time, so the
    children's resource usage grows by this process's alone."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    code = await proc.wait()
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {code}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(wall, cpu)


async def samples(argv: list[str], env: dict[str, str] | None, count: int) -> list[Sample]:
    await timed(argv, env)  # warm: bytecode caches written, files in the page cache
    return [await timed(argv, env) for _ in range(count)]


def describe(runs: list[Sample], floor: list[Sample]) -> str:
    """Wall time (median [range]) and CPU time, each as a ratio to `python -c pass`."""
    from benchmarks.sections import median, spread

    wall = [r.wall_s for r in runs]
    cpu = [r.cpu_s for r in runs]
    wall_ratio = median(wall) / median([f.wall_s for f in floor])
    cpu_ratio = median(cpu) / max(median([f.cpu_s for f in floor]), 1e-3)
    return f"wall {spread(wall)} ({wall_ratio:.0f}x), CPU {spread(cpu)} ({cpu_ratio:.0f}x)"


async def startup_section(bench: Bench) -> None:
    from benchmarks.sections import seconds

    env = bench.coord.env
    count = 3 if bench.options.quick else SAMPLES
    floor = await samples([sys.executable, "-c", "pass"], env, count)
    bench.add(
        "cli", "`python -c pass` (the floor every command starts from)", describe(floor, floor)
    )
    coord = [sys.executable, "-m", "cli.main"]
    target = f"< {seconds(TARGET_S)} idle"
    for command in COMMANDS:
        runs = await samples([*coord, command, "--help"], env, count)
        bench.add(
            "cli",
            f"`coord {command} --help`: start-up, and its ratio to `python -c pass`",
            describe(runs, floor),
            target,
        )
    listing = await samples([*coord, "list", "--limit", "20"], env, count)
    bench.add(
        "cli",
        "`coord list --limit 20` against the server (start-up, connect, one query)",
        describe(listing, floor),
        target,
    )
