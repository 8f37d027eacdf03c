"""The `landing` section: the overhead section's 8 x 8 shape again (or the first `--shape`
with parallel tasks), each task writing a file of its own. The no-op tasks there change
nothing, so they skip what every real task does after its turn: the commit, the merge onto
the execution branch (under the clone's lock, one task after another), the clone's checkout
following it, and new worktrees checking out a growing tree. This puts those on the clock,
beside the no-op run of the same shape in the same benchmark run."""

from __future__ import annotations

from benchmarks.bench import LAYERS_8X8, MAX_PARALLEL, Bench, failed
from benchmarks.cpu import cpu_text
from benchmarks.infra import ExecutionRun, shell_plan
from benchmarks.stats import median, seconds, spread


async def landing_section(bench: Bench) -> None:
    parallel = [x for x in bench.options.shapes if any(len(layer) > 1 for layer in x.layers)]
    s = parallel[0] if parallel else LAYERS_8X8
    writes = {task: f"echo {task} > {task}.txt" for layer in s.layers for task in layer}
    runs: list[ExecutionRun] = []
    for _ in range(bench.options.repeat):
        plan = shell_plan("bench-write", s.layers, writes, bench.repo, max_parallel=MAX_PARALLEL)
        runs.append(await bench.run_plan(plan, "write", s.tasks))
        if not runs[-1].ok:
            break
    what = f"{s.label}, each task writing a file of its own (max_parallel {MAX_PARALLEL})"
    noop = bench.noop_runs.get(s.label) or [await bench.run_noop(s)]
    if problem := failed(runs) or failed(noop):
        bench.add("landing", what, problem, "Complete")
        return
    writing, nothing = median(r.makespan for r in runs), median(r.makespan for r in noop)
    bench.add(
        "landing",
        f"{what}: makespan, and per task beside the no-op tasks",
        f"{spread([r.makespan for r in runs])}: {seconds(writing / s.tasks)} per task, "
        f"no-op {seconds(nothing / s.tasks)} (+{seconds((writing - nothing) / s.tasks)})",
    )
    bench.add(
        "landing",
        f"{s.label}, each task writing a file: CPU per task (worker, the commands it ran, "
        "server), and the no-op tasks'",
        f"{cpu_text([r.cpu for r in runs if r.cpu], s.tasks)}, no-op "
        f"{cpu_text([r.cpu for r in noop if r.cpu], s.tasks)}",
    )
