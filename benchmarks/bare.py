"""The baselines of the overhead benchmark: the same DAG of no-op steps, run by a bare Temporal
workflow (one activity per task) and by plain asyncio (one coroutine per task). With
`commands`, the bare workflow's activity runs them instead, each in coord's jail
(benchmarks/jailed.py): what any coordinator that jails a task's commands pays at least.

A DAG is a list of layers; every task of a layer depends on every task of the previous one,
which is the plan's layer rule (a chain is layers of one). Both run at most `max_parallel`
steps at once, like the plan's `max_parallel`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import activity, workflow

BARE_WORKFLOW = "BenchBareDag"
NOOP_ACTIVITY = "bench_noop"
JAILED_ACTIVITY = "bench_jailed"


@dataclass
class DagInput:
    layers: list[list[str]]
    max_parallel: int
    commands: list[str] = field(default_factory=list)  # run by each task, each in the jail
    scratch: str = ""  # where the jailed tasks get their folders


@dataclass
class JailedStep:
    task: str
    commands: list[str]
    scratch: str


@activity.defn(name=NOOP_ACTIVITY)
async def noop(task: str) -> None:
    """Nothing: the cost measured is Temporal's scheduling, dispatch and history."""


@workflow.defn(name=BARE_WORKFLOW)
class BareDagWorkflow:
    @workflow.run
    async def run(self, dag: DagInput) -> int:
        slots = asyncio.Semaphore(dag.max_parallel)
        finished = [0] * len(dag.layers)

        async def step(layer: int, task: str) -> None:
            if layer:
                previous = len(dag.layers[layer - 1])
                await workflow.wait_condition(lambda: finished[layer - 1] == previous)
            name, arg = (
                (JAILED_ACTIVITY, JailedStep(task, dag.commands, dag.scratch))
                if dag.commands
                else (NOOP_ACTIVITY, task)
            )
            async with slots:
                await workflow.execute_activity(
                    name, arg, start_to_close_timeout=timedelta(seconds=60)
                )
            finished[layer] += 1

        await asyncio.gather(
            *(step(n, task) for n, layer in enumerate(dag.layers) for task in layer)
        )
        return sum(finished)


async def asyncio_dag(dag: DagInput) -> float:
    """Seconds plain asyncio takes to run the DAG of no-op coroutines: the floor."""
    slots = asyncio.Semaphore(dag.max_parallel)
    layer_done = [asyncio.Event() for _ in dag.layers]
    finished = [0] * len(dag.layers)

    async def nothing() -> None:
        await asyncio.sleep(0)

    async def step(layer: int, task: str) -> None:
        if layer:
            await layer_done[layer - 1].wait()
        async with slots:
            await nothing()
        finished[layer] += 1
        if finished[layer] == len(dag.layers[layer]):
            layer_done[layer].set()

    start = time.perf_counter()
    await asyncio.gather(*(step(n, task) for n, layer in enumerate(dag.layers) for task in layer))
    return time.perf_counter() - start
