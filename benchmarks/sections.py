"""The measurements of `python -m benchmarks`, one function per section of the table."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from benchmarks import plan_scale
from benchmarks.bare import BARE_WORKFLOW, BareDagWorkflow, DagInput, asyncio_dag, noop
from benchmarks.bench import (
    LAYERS_8X8,
    LAYERS_20X50,
    MAX_PARALLEL,
    Bench,
    Shape,
    failed,
    timeout_for,
)
from benchmarks.big_repo import big_repo_section
from benchmarks.cpu import CpuUse, cpu_text, cpu_use
from benchmarks.infra import (
    BenchError,
    ExecutionRun,
    first_activity_start_after,
    longest_heartbeat_timeout,
    shell_plan,
)
from benchmarks.jailed import jailed
from benchmarks.landing import landing_section
from benchmarks.soak import soak_section
from benchmarks.startup import startup_section
from benchmarks.stats import median, seconds, spread

BARE_TASK_QUEUE = "coord-bench-bare"
WARN_EVENTS = 10_240  # Temporal warns about a workflow's history at this many events


# --------------------------------------------------------------------------- 0. plan


async def plan_section(bench: Bench) -> None:
    """Validation and scheduling of big plans, pure Python (plan_scale.py)."""
    for r in await asyncio.to_thread(plan_scale.measure):
        bench.add(
            "plan",
            f"{r.shape} ({r.tasks} tasks): validate, schedule, ready after every finish "
            f"(median of {plan_scale.REPEATS})",
            f"validate {r.validate_ms:.1f} ms, schedule {r.schedule_ms:.1f} ms, "
            f"ready {r.drain_ms:.1f} ms",
        )


# --------------------------------------------------------------------------- 1. overhead


async def bare_dag(
    client: Client, s: Shape, commands: Sequence[str] = (), scratch: Path = Path()
) -> float:
    """Seconds the bare Temporal workflow takes, start to close, as the server recorded them;
    with `commands`, each task runs them in the jail (benchmarks/jailed.py) under `scratch`."""
    kind = f"{'jailed' if commands else 'bare'}-{secrets.token_hex(3)}"
    handle = await client.start_workflow(
        BARE_WORKFLOW,
        DagInput(s.layers, MAX_PARALLEL, list(commands), str(scratch / kind)),
        id=f"bench-{kind}-{s.slug}",
        task_queue=BARE_TASK_QUEUE,
    )
    await asyncio.wait_for(handle.result(), timeout_for(s.tasks))
    described = await handle.describe()
    assert described.close_time is not None
    return (described.close_time - described.start_time).total_seconds()


def bare_worker(bench: Bench) -> Worker:
    """The bare DAG's worker, in this process, for both baselines."""
    return Worker(
        bench.client,
        task_queue=BARE_TASK_QUEUE,
        workflows=[BareDagWorkflow],
        activities=[noop, jailed],
        max_concurrent_activities=MAX_PARALLEL,
    )


async def overhead_section(bench: Bench) -> None:
    async with bare_worker(bench):
        for s in bench.options.shapes:
            coord: list[ExecutionRun] = []
            bare: list[float] = []
            bare_cpu: list[CpuUse] = []
            jailed_bare: list[float] = []
            floor: list[float] = []
            for _ in range(bench.options.repeat):
                run = await bench.run_noop(s)
                coord.append(run)
                before = cpu_use(os.getpid(), bench.server_pid)  # the bare worker is in here
                bare.append(await bare_dag(bench.client, s))
                bare_cpu.append(cpu_use(os.getpid(), bench.server_pid) - before)
                jailed_bare.append(await bare_dag(bench.client, s, ["true"], bench.scratch))
                floor.append(await asyncio_dag(DagInput(s.layers, MAX_PARALLEL)))
                if not run.ok:
                    break  # a plan that does not finish will not finish faster next time
            what = f"{s.label} ({s.tasks} no-op tasks, max_parallel {MAX_PARALLEL})"
            if problem := failed(coord):
                bench.add("overhead", what, problem, "Complete")
                continue
            makespans = [r.makespan for r in coord]
            ratio = median(makespans) / median(bare)
            bench.add(
                "overhead",
                f"{what}: makespan",
                f"coord {spread(makespans)}, bare Temporal DAG {spread(bare)}, "
                f"asyncio {spread(floor)}",
            )
            bench.add(
                "overhead",
                f"{s.label}: per task, and coord / bare Temporal",
                f"coord {seconds(median(makespans) / s.tasks)}, "
                f"bare {seconds(median(bare) / s.tasks)}: {ratio:.1f}x "
                f"(the implementation phase alone: "
                f"{median(r.implementation_span for r in coord) / median(bare):.1f}x)",
                "coord / bare <= 4x",
            )
            jailed_ratio = median(makespans) / median(jailed_bare)
            bench.add(
                "overhead",
                f"{s.label}: per task, the bare DAG with each task's command (`true`) in "
                "coord's jail, and coord / that",
                f"jailed bare {seconds(median(jailed_bare) / s.tasks)} "
                f"({median(jailed_bare) / median(bare):.1f}x bare): coord {jailed_ratio:.1f}x",
            )
            bench.add(
                "overhead",
                f"{s.label}: CPU per task (worker, the commands it ran, server), coord / bare",
                cpu_per_task(coord, bare_cpu, s.tasks),
            )
            if s.layers and all(len(layer) == 1 for layer in s.layers):
                bench.add(
                    "overhead",
                    f"{s.label}: where a task's time goes (per task, summed over workflows)",
                    await breakdown(bench.client, coord[-1]),
                )


def cpu_per_task(coord: list[ExecutionRun], bare: list[CpuUse], tasks: int) -> str:
    """Medians, in milliseconds per task: steadier than wall time on a busy machine."""
    runs = [r.cpu for r in coord if r.cpu is not None]
    ratio = median([c.total for c in runs]) / median([b.total for b in bare])
    return (
        f"coord {cpu_text(runs, tasks)}, bare {cpu_text(bare, tasks, commands=False)}: {ratio:.1f}x"
    )


async def breakdown(client: Client, run: ExecutionRun) -> str:
    """Activity run and queue time by activity type, workflow task time, from the histories.
    On a chain these add up along the critical path."""
    scheduled: dict[tuple[str, int], tuple[str, datetime]] = {}
    started: dict[tuple[str, int], datetime] = {}
    queue: dict[str, float] = defaultdict(float)
    running: dict[str, float] = defaultdict(float)
    wft_scheduled: dict[tuple[str, int], datetime] = {}
    wft_started: dict[tuple[str, int], datetime] = {}
    wft_wait = wft_run = 0.0
    wft_count = 0
    for wf in run.workflows:
        history = await client.get_workflow_handle(wf.workflow_id, run_id=wf.run_id).fetch_history()
        key = wf.run_id
        for e in history.events:
            when = e.event_time.ToDatetime()
            if e.HasField("activity_task_scheduled_event_attributes"):
                name = e.activity_task_scheduled_event_attributes.activity_type.name
                scheduled[key, e.event_id] = (name, when)
            elif e.HasField("activity_task_started_event_attributes"):
                sid = e.activity_task_started_event_attributes.scheduled_event_id
                name, at = scheduled[key, sid]
                started[key, sid] = when
                queue[name] += (when - at).total_seconds()
            elif e.HasField("activity_task_completed_event_attributes") or e.HasField(
                "activity_task_failed_event_attributes"
            ):
                attrs = (
                    e.activity_task_completed_event_attributes
                    if e.HasField("activity_task_completed_event_attributes")
                    else e.activity_task_failed_event_attributes
                )
                sid = attrs.scheduled_event_id
                if (key, sid) in started:
                    running[scheduled[key, sid][0]] += (when - started[key, sid]).total_seconds()
            elif e.HasField("workflow_task_scheduled_event_attributes"):
                wft_scheduled[key, e.event_id] = when
            elif e.HasField("workflow_task_started_event_attributes"):
                sid = e.workflow_task_started_event_attributes.scheduled_event_id
                wft_started[key, e.event_id] = when
                if (key, sid) in wft_scheduled:
                    wft_wait += (when - wft_scheduled[key, sid]).total_seconds()
            elif e.HasField("workflow_task_completed_event_attributes"):
                sid = e.workflow_task_completed_event_attributes.started_event_id
                if (key, sid) in wft_started:
                    wft_run += (when - wft_started[key, sid]).total_seconds()
                    wft_count += 1
    n = run.tasks
    top = sorted(running.items(), key=lambda kv: -kv[1])[:8]
    acts = ", ".join(f"{name} {seconds(total / n)}" for name, total in top)
    return (
        f"activities running {seconds(sum(running.values()) / n)} ({acts}, ...); "
        f"activities waiting for a worker {seconds(sum(queue.values()) / n)}; "
        f"{wft_count / n:.1f} workflow tasks: waiting {seconds(wft_wait / n)}, "
        f"running {seconds(wft_run / n)}"
    )


# --------------------------------------------------------------------------- 2. parallel


async def parallel_section(bench: Bench) -> None:
    s = LAYERS_8X8
    ideal = len(s.layers) * 1.0
    runs = []
    for _ in range(bench.options.repeat):
        plan = shell_plan(
            "bench-sleep", s.layers, "sleep 1", bench.repo, max_parallel=8, gate="true"
        )
        before = bench.cpu()
        run = await bench.coord.run(plan, bench.execution_id("sleep"), timeout=timeout_for(64))
        run.cpu = bench.cpu() - before
        runs.append(run)
        if not run.ok:
            break
    what = "8 layers x 8 of `sleep 1`, a task gate (`true`) each, max_parallel 8"
    if problem := failed(runs):
        bench.add("parallel", what, problem, "Complete")
        return
    async with bare_worker(bench):
        floor = [
            await bare_dag(bench.client, s, ["sleep 1", "true"], bench.scratch)
            for _ in range(bench.options.repeat)
        ]
    makespans = [r.makespan for r in runs]
    impl = [r.implementation_span for r in runs]
    bench.add(
        "parallel",
        f"{what}: makespan",
        f"execution {spread(makespans)}, implementation phase {spread(impl)}",
        f"ideal {seconds(ideal)}",
    )
    bench.add(
        "parallel",
        "parallel efficiency: 8 x 1 s / makespan",
        f"execution {ideal / median(makespans):.2f}, "
        f"implementation phase {ideal / median(impl):.2f}",
        ">= 0.90",
    )
    bench.add(
        "parallel",
        "the floor: the same DAG in a bare Temporal workflow, each task running `sleep 1` and "
        "`true` in coord's jail and nothing else (benchmarks/jailed.py): makespan, efficiency",
        f"{spread(floor)}, {ideal / median(floor):.2f}",
    )
    bench.add(
        "parallel",
        f"CPU per task (worker, the commands it ran, server), on {os.cpu_count()} CPUs",
        cpu_text([r.cpu for r in runs if r.cpu is not None], s.tasks),
    )
    bench.add(
        "parallel",
        "where a task's time goes (per task, summed over workflows)",
        await breakdown(bench.client, runs[-1]),
    )


# --------------------------------------------------------------------------- 3. history


async def history_section(bench: Bench) -> None:
    wanted = [s for s in bench.options.shapes if s.tasks > 1]
    for s in wanted:
        if not bench.noop_runs[s.label]:
            run = await bench.run_noop(s)
            if not run.ok:
                bench.add("history", s.label, failed([run]) or "", "Complete")
                continue
    labels = [s.label for s in wanted] + [
        label for label in bench.noop_runs if label not in {s.label for s in wanted}
    ]
    for label in labels:
        runs = bench.noop_runs[label]
        if not runs:
            continue
        tasks = runs[0].tasks
        events = [sum(w.events for w in r.workflows) / tasks for r in runs]
        size = [sum(w.size_bytes for w in r.workflows) / tasks for r in runs]
        largest = max((w for r in runs for w in r.workflows), key=lambda w: w.events)
        name = largest.workflow_id.split("/", 1)[1] if "/" in largest.workflow_id else "execution"
        count = median(len(r.workflows) for r in runs)
        over = " OVER THE WARNING" if largest.events >= WARN_EVENTS else ""
        bench.add(
            "history",
            f"{label} ({tasks} tasks): events and bytes per task (all {count:.0f} workflow "
            "runs); the largest workflow",
            f"{median(events):.1f} events, {median(size) / 1024:.1f} KiB per task; largest "
            f"{name}: {largest.events:,} events, {largest.size_bytes / 2**20:.2f} MiB{over}",
            f"<= 20 events per task, every workflow < {WARN_EVENTS:,} events",
        )


# --------------------------------------------------------------------------- 4. recovery


async def until(check: Callable[[], bool], timeout: float, what: str, bench: Bench) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not within {timeout} s\n{bench.workers.output()}")
        await asyncio.sleep(0.02)


async def kill_recovery(bench: Bench, marks: Path) -> tuple[float, float | None]:
    """Seconds from SIGKILL of the worker (and of the specialist it runs, as a machine crash
    would) to the task's command starting again under a new worker; the heartbeat timeout."""
    marks.mkdir(parents=True)
    starts, pid_file = marks / "starts", marks / "pid"
    # Its pid and a timestamp per start go outside the worktree; the retry need not sleep.
    command = (
        f"echo $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}; date +%s.%N >> {starts}; "
        f'[ "$(wc -l < {starts})" -gt 1 ] || sleep 5'
    )
    # Without the jail, which would keep the marks (outside the worktree) from the command
    # and take the specialist down with its worker by itself.
    plan = {**shell_plan("bench-crash", [["slow"]], command, bench.repo), "confine": "off"}
    eid = bench.execution_id("crash")
    handle = await bench.coord.start(plan, eid)

    def lines() -> int:
        return len(starts.read_text().split()) if starts.exists() else 0

    await until(lambda: lines() >= 1 and pid_file.exists(), 120, "the slow task started", bench)
    await asyncio.sleep(0.5)  # well inside its 5 s
    specialist = int(pid_file.read_text())
    killed_at = time.time()
    bench.workers.kill(bench.worker)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(os.getpgid(specialist), signal.SIGKILL)
    bench.worker = await bench.workers.start()
    await until(lambda: lines() >= 2, 300, "the slow task ran again", bench)
    again = float(starts.read_text().split()[1])
    result = await asyncio.wait_for(handle.result(), 120)
    if result.get("status") != "Complete":
        raise BenchError(f"{eid} ended {result.get('status')} after the crash")
    heartbeat = await longest_heartbeat_timeout(bench.client, eid)
    return again - killed_at, heartbeat.total_seconds() if heartbeat else None


async def escalation_latencies(bench: Bench, answers: int) -> list[float]:
    """A task that always fails escalates after 3 attempts; answer `retry` `answers` times and
    measure from the update returning to the next activity's start in history, then abort."""
    plan = shell_plan("bench-escalate", [["fails"]], "false", bench.repo)
    eid = bench.execution_id("escalate")
    handle = await bench.coord.start(plan, eid)
    latencies = []

    async def pending() -> bool:
        progress: dict[str, Any] = await handle.query("progress")
        return any(e.get("state") == "pending" for e in progress.get("escalations", []))

    for n in range(answers + 1):
        deadline = time.monotonic() + 120
        while not await pending():
            if time.monotonic() > deadline:
                raise BenchError(f"{eid}: no escalation within 120 s\n{bench.workers.output()}")
            await asyncio.sleep(0.1)
        if n == answers:
            await handle.execute_update("resolve_escalation", {"action": "abort"})
            break
        before = datetime.now(UTC)
        await handle.execute_update("resolve_escalation", {"action": "retry"})
        answered = datetime.now(UTC)
        started = await first_activity_start_after(bench.client, eid, before, timeout=60)
        latencies.append((started - answered).total_seconds())
    await asyncio.wait_for(handle.result(), 120)
    return latencies


async def recovery_section(bench: Bench) -> None:
    kills: list[float] = []
    heartbeat: float | None = None
    for n in range(bench.options.repeat):
        seconds_to_resume, heartbeat = await kill_recovery(bench, bench.scratch / f"crash-{n}")
        kills.append(seconds_to_resume)
    hb = f"{heartbeat:.0f} s" if heartbeat is not None else "?"
    bench.add(
        "recovery",
        "worker SIGKILL mid-task -> the task running again on a restarted worker",
        f"{spread(kills)} (heartbeat timeout {hb})",
        f"<= heartbeat timeout + 5 s = {heartbeat + 5:.0f} s" if heartbeat else "",
    )
    latencies = await escalation_latencies(bench, max(3, bench.options.repeat))
    bench.add(
        "recovery",
        f"escalation answer (resolve_escalation update returned) -> next activity started, "
        f"{len(latencies)} answers",
        spread(latencies),
        "< 200 ms",
    )


# --------------------------------------------------------------------------- 5. memory


async def memory_section(bench: Bench) -> None:
    """A fresh worker runs the 1,000-task plan; its VmHWM is the peak."""
    s = LAYERS_20X50
    worker = await bench.replace_worker()
    baseline = worker.peak_rss_bytes()
    plan = shell_plan(f"bench-{s.slug}", s.layers, "true", bench.repo, max_parallel=MAX_PARALLEL)
    run = await bench.coord.run(
        plan, bench.execution_id(f"mem{s.slug}"), timeout=bench.options.memory_timeout
    )
    peak = worker.peak_rss_bytes()
    what = f"worker peak RSS (VmHWM), {s.tasks}-task plan ({s.label} no-op)"
    mib = 1024 * 1024
    if run.ok:
        bench.noop_runs[s.label].append(run)
        outcome = f"Complete in {seconds(run.makespan)}"
    else:
        outcome = f"NOT COMPLETE: {run.status}, {run.tasks_done}/{run.tasks} tasks passed"
    bench.add(
        "memory",
        what,
        f"{peak / mib:.0f} MiB (after start {baseline / mib:.0f} MiB); {outcome}",
    )


SECTIONS: dict[str, Callable[[Bench], Awaitable[None]]] = {
    "plan": plan_section,
    "overhead": overhead_section,
    "parallel": parallel_section,
    "recovery": recovery_section,
    "memory": memory_section,
    "soak": soak_section,
    "cli": startup_section,
    "landing": landing_section,
    "big-repo": big_repo_section,
    "history": history_section,  # last: it reads the no-op runs the others made
}
ORDER = [
    "plan",
    "cli",
    "overhead",
    "parallel",
    "landing",
    "big-repo",
    "history",
    "recovery",
    "memory",
    "soak",
]  # of the table
