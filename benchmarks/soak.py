"""The soak section: a small plan run many times in a row, every run must end Complete.

Not a speed measurement: it looks for the rare endings that a single run hides (an execution
that ends Cancelled though nobody cancelled it, or one that hangs at 100 %). Short phases,
about as long as the phases' 2-second update interval, used to hit such races most, so the
plan is three no-op tasks in one layer.
"""

from __future__ import annotations

import time
from collections import Counter

from benchmarks.bench import Bench
from benchmarks.infra import shell_plan

RUNS = 50
QUICK_RUNS = 10
TIMEOUT = 120.0  # a 3-task no-op run takes seconds: one still running by then is stuck


async def soak_section(bench: Bench) -> None:
    runs = QUICK_RUNS if bench.options.quick else RUNS
    plan = shell_plan("bench-soak", [["a", "b", "c"]], "true", bench.repo, max_parallel=3)
    endings: Counter[str] = Counter()
    bad: list[str] = []
    started = time.monotonic()
    for _ in range(runs):
        run = await bench.coord.run(plan, bench.execution_id("soak"), timeout=TIMEOUT)
        ending = (
            run.status
            if run.status.startswith(("Complete", "Partial", "Cancelled"))
            else ("stuck" if run.status.startswith("timed out") else run.status)
        )
        endings[ending] += 1
        if not run.ok:
            bad.append(f"{run.execution_id}: {run.status} ({run.tasks_done}/3 tasks passed)")
    took = time.monotonic() - started
    summary = ", ".join(f"{count} {ending}" for ending, count in endings.most_common())
    bench.add(
        "soak",
        f"{runs} runs in a row of a 3-task no-op plan ({took / runs:.1f} s each)",
        summary + (f"; first bad: {bad[0]}" if bad else ""),
        f"all {runs} Complete, none Cancelled or stuck",
    )
    if bad:
        raise AssertionError(f"{len(bad)} of {runs} soak runs did not end Complete: {bad[0]}")
