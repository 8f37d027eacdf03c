"""How long `coord validate` and the scheduler take on big plans (no Temporal involved).

Validation runs on every `coord run` and again on the worker in the setup phase, and the
scheduler's `ready` runs after every finished task, so both must stay cheap at 1,000 tasks.
The `plan` section of `python -m benchmarks`; alone: `python -m benchmarks.plan_scale`.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import yaml

from coordinator.dag import TaskGraph
from coordinator.validation import validate_plan_file

REPEATS = 5


def layered_plan(layers: int, width: int) -> dict[str, object]:
    """`layers` layers of `width` tasks; each task depends on the whole previous layer."""
    return {
        "name": f"bench-{layers}x{width}",
        "repository": ".",
        "max_parallel": 8,
        "tasks": [
            {
                "id": f"t{layer}-{i}",
                "title": f"Task {i} of layer {layer}",
                "specialist": "shell",
                "prompt": "true",
                "layer": f"L{layer}",
                "files": [f"src/l{layer}/f{i}.py"],
            }
            for layer in range(layers)
            for i in range(width)
        ],
    }


def chain_plan(length: int) -> dict[str, object]:
    return {
        "name": f"bench-chain-{length}",
        "repository": ".",
        "tasks": [
            {
                "id": f"t{i}",
                "title": f"Step {i}",
                "specialist": "shell",
                "prompt": "true",
                "depends_on": [f"t{i - 1}"] if i else [],
            }
            for i in range(length)
        ],
    }


def median_ms(action: Callable[[], object]) -> float:
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def drain(graph: TaskGraph, max_parallel: int) -> None:
    """What the implementation phase will do: ask for ready tasks after every completion."""
    done: set[str] = set()
    started: set[str] = set()
    running: list[str] = []
    while len(done) < len(graph):
        for task in graph.ready(done, started)[: max_parallel - len(running)]:
            started.add(task)
            running.append(task)
        done.add(running.pop(0))


SHAPES = {
    "8 layers x 8": layered_plan(8, 8),
    "chain of 50": chain_plan(50),
    "20 layers x 50": layered_plan(20, 50),
    "chain of 1000": chain_plan(1000),
}


@dataclass
class Scale:
    shape: str
    tasks: int
    validate_ms: float
    schedule_ms: float
    drain_ms: float


def measure() -> list[Scale]:
    """Median milliseconds of validating, scheduling and draining each shape."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, data in SHAPES.items():
            path = Path(tmp) / "plan.yaml"
            path.write_text(yaml.safe_dump(data, sort_keys=False))
            result = validate_plan_file(path)
            assert result.ok and result.plan is not None, [str(p) for p in result.errors]
            graph = TaskGraph.from_tasks(result.plan.tasks)
            results.append(
                Scale(
                    label,
                    len(graph),
                    median_ms(partial(validate_plan_file, path)),
                    median_ms(partial(graph.schedule, 8)),
                    median_ms(partial(drain, graph, 8)),
                )
            )
    return results


def main() -> None:
    print(f"plan scale (median of {REPEATS}, milliseconds)")
    print(f"{'shape':<16} {'tasks':>6} {'validate':>10} {'schedule':>10} {'drain ready':>12}")
    for r in measure():
        print(
            f"{r.shape:<16} {r.tasks:>6} "
            f"{r.validate_ms:>10.1f} {r.schedule_ms:>10.1f} {r.drain_ms:>12.1f}"
        )


if __name__ == "__main__":
    main()
