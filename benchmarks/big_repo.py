"""The `big-repo` section: tasks in a repository of 5,000 files (9 MB), beside the same plan
in the one-file repository the other sections use. Every task works in a worktree of its own:
made with all the files of the branch, or a spare one (activities/worktree_spares.py) reset to
the task's base. This shows what a real repository's size adds to a task."""

from __future__ import annotations

from pathlib import Path

from benchmarks.bench import MAX_PARALLEL, Bench, failed
from benchmarks.cpu import cpu_text
from benchmarks.infra import ExecutionRun, commit_all, shell_plan
from benchmarks.stats import median, seconds, spread

FILES = 5_000  # 500 with --quick
FOLDERS = 100


def big_repo(path: Path, files: int) -> Path:
    """`files` Python files of some 1.8 KB each, in FOLDERS folders, in one commit."""
    for k in range(files):
        folder = path / f"pkg{k % FOLDERS}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"mod{k}.py").write_text(f"VALUE = {k}\n" * 150)
    return commit_all(path)


async def big_repo_section(bench: Bench) -> None:
    quick = bench.options.quick
    files, (count, width) = (FILES // 10, (2, 2)) if quick else (FILES, (4, 8))
    layers = [[f"l{n}t{k}" for k in range(width)] for n in range(count)]
    tasks = count * width
    writes = {task: f"echo {task} > {task}.txt" for layer in layers for task in layer}
    what = f"{count} layers x {width}, each task writing a file (max_parallel {MAX_PARALLEL})"
    big = big_repo(bench.scratch / "big-repo", files)
    runs: dict[str, list[ExecutionRun]] = {"big": [], "small": []}
    for _ in range(bench.options.repeat):
        for kind, repo in (("big", big), ("small", bench.repo)):
            plan = shell_plan(f"bench-{kind}", layers, writes, repo, max_parallel=MAX_PARALLEL)
            runs[kind].append(await bench.run_plan(plan, f"{kind}-repo", tasks))
    if problem := failed(runs["big"]) or failed(runs["small"]):
        bench.add("big-repo", what, problem, "Complete")
        return
    per_task = {k: median(r.makespan for r in v) / tasks for k, v in runs.items()}
    bench.add(
        "big-repo",
        f"{what}, in a repository of {files:,} files: makespan, per task, and per task in the "
        "one-file repository",
        f"{spread([r.makespan for r in runs['big']])}: {seconds(per_task['big'])} per task, "
        f"one file {seconds(per_task['small'])} (+{seconds(per_task['big'] - per_task['small'])})",
    )
    bench.add(
        "big-repo",
        f"{files:,} files: CPU per task (worker, the commands it ran, server), and in the "
        "one-file repository",
        f"{cpu_text([r.cpu for r in runs['big'] if r.cpu], tasks)}, one file "
        f"{cpu_text([r.cpu for r in runs['small'] if r.cpu], tasks)}",
    )
