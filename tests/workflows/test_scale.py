"""Large plans within Temporal's limits: every workflow of a 1,000-task execution stays under
the history warning (10,240 events, 10 MB), and continue-as-new carries the state across runs,
a pending escalation and a pending approval included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from cli.devserver import temporal_binary
from coordinator.escalation import Action, ApprovalAnswer, Escalation, Resolution
from tests.engine_support import (
    branch_log,
    make_repo,
    pending_escalation,
    running_worker,
    shell_task,
    start,
    wait_for,
    write_plan,
)
from worker import ensure_search_attributes
from workflows import search_attributes as sa
from workflows.execution import ExecutionWorkflow
from workflows.phase import ESCALATION_ANSWERED, ESCALATION_RAISED

EVENTS_WARNING = 10_240
BYTES_WARNING = 10 * 1024 * 1024
PHASES = ("setup", "implementation", "validation", "integration", "review")


async def runs_of(client: Client, workflow_id: str) -> list[History]:
    """Every run of a workflow id, oldest first, following the continue-as-new chain back."""
    runs: list[History] = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        runs.insert(0, History(events=history.events))
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id or None
        if run_id is None:
            return runs


async def every_workflow(client: Client, execution_id: str) -> dict[str, list[History]]:
    found = {execution_id: await runs_of(client, execution_id)}
    for phase in PHASES:
        try:
            found[f"{execution_id}/{phase}"] = await runs_of(client, f"{execution_id}/{phase}")
        except Exception:  # a phase the plan skips has no workflow
            continue
    return found


async def test_a_thousand_tasks_stay_under_the_history_limits(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    # Each task writes one small file: a commit per task is what the branch must show.
    tasks = [
        shell_task(f"t{i:04d}", f"echo {i} > t{i:04d}.txt", layer=f"L{i // 50:02d}")
        for i in range(1000)
    ]
    plan = write_plan(tmp_path, {"max_parallel": 8, "tasks": tasks})
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        report = await asyncio.wait_for(handle.result(), timeout=1500)

    assert report.status == "Complete", report.problems
    assert sum(t.status == "passed" for t in report.tasks) == 1000
    assert len(branch_log(report)) == 1000  # one commit per task, none twice
    workflows = await every_workflow(client, handle.id)
    sizes = {
        f"{wid} run {n}": (len(run.events), run.ByteSize())
        for wid, runs in workflows.items()
        for n, run in enumerate(runs, 1)
    }
    for name, (events, size) in sizes.items():
        assert events < EVENTS_WARNING, f"{name}: {events} events"
        assert size < BYTES_WARNING, f"{name}: {size} bytes"
    # The scheduler was partitioned into several runs, none anywhere near the warning.
    assert len(workflows[f"{handle.id}/implementation"]) >= 2, sizes


@pytest.fixture
async def eager_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server that suggests continue-as-new after a few dozen events."""
    local = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_binary()),
        data_converter=pydantic_data_converter,
        search_attributes=sa.ALL,
        dev_server_extra_args=[
            "--dynamic-config-value",
            "limit.historyCount.suggestContinueAsNew=30",
            "--dynamic-config-value",
            "history.transferProcessorMaxPollRPS=200",
        ],
    )
    async with local:
        await ensure_search_attributes(local.client, "default")
        yield local


def run_with(runs: list[History], kind: str, name: str) -> int:
    """The index of the run whose history has a `kind` event (signal_external... or
    workflow_execution_signaled) for the signal `name`."""
    for index, run in enumerate(runs):
        for event in run.events:
            if event.WhichOneof("attributes") != f"{kind}_event_attributes":
                continue
            attributes = getattr(event, f"{kind}_event_attributes")
            if attributes.signal_name == name:
                return index
    raise AssertionError(f"no {kind} {name} in {len(runs)} runs")


async def waiting_since_in_a_later_run(
    handle: WorkflowHandle[Any, Any], asked_at: datetime | None
) -> None:
    """The Web UI's CoordWaitingSince still says when the approval was asked once the
    execution has continued as new while it waits."""
    assert asked_at is not None
    for _ in range(300):
        desc = await handle.describe()
        if desc.run_id != handle.first_execution_run_id:
            since = desc.typed_search_attributes.get(sa.WAITING_SINCE)
            assert since is not None and abs(since - asked_at) < timedelta(milliseconds=1)
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the execution did not continue as new while the approval waited")


async def test_continue_as_new_carries_a_pending_escalation_and_approval(
    eager_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    client = eager_env.client
    task_queue = "scale-carry"
    make_repo(tmp_path / "repo")
    # `stuck` fails until a human gives guidance; the others keep the scheduler busy (and its
    # history growing) while it waits.
    tasks = [shell_task("stuck", 'test -n "$COORD_GUIDANCE" && echo fixed > stuck.txt')]
    tasks += [shell_task(f"t{i}", f"echo {i} > t{i}.txt", depends_on=[]) for i in range(12)]
    plan = write_plan(
        tmp_path,
        {"max_parallel": 2, "approval": {"before_handoff": True}, "tasks": tasks},
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        escalation = await pending_escalation(handle, timeout=120)
        assert escalation.task_id == "stuck"
        await wait_for(
            handle,
            lambda p: all(t.status == "passed" for t in p.tasks if t.id != "stuck"),
            timeout=120,
        )
        resolved = await handle.execute_update(
            "resolve_escalation",
            Resolution(escalation_id=escalation.id, action=Action.RETRY, guidance="go ahead"),
            result_type=Escalation,
        )
        assert resolved.state == "answered"
        asking = await wait_for(handle, lambda p: p.pending_approval is not None, timeout=120)
        assert asking.pending_approval is not None
        await waiting_since_in_a_later_run(handle, asking.pending_approval.asked_at)
        await handle.execute_update(ExecutionWorkflow.approve, ApprovalAnswer(reason="ok"))
        report = await asyncio.wait_for(handle.result(), timeout=120)

    assert report.status == "Complete", report.problems
    assert {t.id: t.status for t in report.tasks} == {t["id"]: "passed" for t in tasks}
    stuck = next(t for t in report.tasks if t.id == "stuck")
    assert stuck.attempts == 4  # three before the escalation, one after: none lost or redone
    (answered,) = report.escalations
    assert answered.state == "answered" and answered.answer is not None
    assert answered.answer.guidance == "go ahead"
    assert [a.state for a in report.approvals] == ["approved"]
    # One commit per task: nothing redone across the runs.
    assert sorted(branch_log(report)) == sorted(f"{t['id']}: Task {t['id']}" for t in tasks)
    # The scheduler raised the escalation in one run and got the answer in a later one ...
    scheduler = await runs_of(client, f"{handle.id}/implementation")
    raised = run_with(scheduler, "signal_external_workflow_execution_initiated", ESCALATION_RAISED)
    answered_in = run_with(scheduler, "workflow_execution_signaled", ESCALATION_ANSWERED)
    assert answered_in > raised, (raised, answered_in, len(scheduler))
    # ... and the execution asked for the approval in one run and was approved in a later one,
    # which went on from the approval without running setup or implementation again.
    execution = await runs_of(client, handle.id)
    assert len(execution) >= 2
    last = execution[-1]
    started_children = [
        e.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for e in last.events
        if e.HasField("start_child_workflow_execution_initiated_event_attributes")
    ]
    assert started_children == [f"{handle.id}/integration"], started_children
    assert any(
        e.HasField("workflow_execution_update_accepted_event_attributes") for e in last.events
    )
