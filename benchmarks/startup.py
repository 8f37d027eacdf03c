"""The `cli` section: how long a `coord` command takes to start, against `python -c pass`.

Every command a person types while an execution runs (status, list, resolve, watch, report)
should answer at once: its start-up is the interpreter plus what the command imports. Each is
timed as a fresh process, `--help` (start-up alone) and `coord list` against the benchmark's
server (start-up, one connection, one visibility query).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING

from benchmarks.infra import ROOT

if TYPE_CHECKING:
    from benchmarks.sections import Bench

COMMANDS = ("status", "list", "resolve", "watch", "report")
SAMPLES = 7  # per command: the median of fresh processes (3 with --quick)
TARGET_S = 0.5


async def wall_time(argv: list[str], env: dict[str, str] | None) -> float:
    """Seconds from starting the process to its exit (its output thrown away)."""
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    code = await proc.wait()
    elapsed = time.perf_counter() - began
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {code}")
    return elapsed


async def samples(argv: list[str], env: dict[str, str] | None, count: int) -> list[float]:
    await wall_time(argv, env)  # warm: bytecode caches written, files in the page cache
    return [await wall_time(argv, env) for _ in range(count)]


async def startup_section(bench: Bench) -> None:
    from benchmarks.sections import median, seconds, spread

    env = bench.coord.env
    count = 3 if bench.options.quick else SAMPLES
    bare = await samples([sys.executable, "-c", "pass"], env, count)
    base = median(bare)
    bench.add("cli", "`python -c pass` (the floor every command starts from)", spread(bare))
    coord = [sys.executable, "-m", "cli.main"]
    for command in COMMANDS:
        times = await samples([*coord, command, "--help"], env, count)
        bench.add(
            "cli",
            f"`coord {command} --help`: start-up, and its ratio to `python -c pass`",
            f"{spread(times)}: {median(times) / base:.1f}x",
            f"< {seconds(TARGET_S)}",
        )
    listing = await samples([*coord, "list", "--limit", "20"], env, count)
    bench.add(
        "cli",
        "`coord list --limit 20` against the server (start-up, connect, one query)",
        f"{spread(listing)}: {median(listing) / base:.1f}x `python -c pass`",
        f"< {seconds(TARGET_S)}",
    )
