"""Determinism: every recorded history in tests/histories/ replays against today's workflow code.

Temporal rebuilds a workflow's state by running its code again over its history. When a
change to workflow code makes that code issue other commands (another activity, a timer, a
child or a signal in another order) than the history holds, every execution that is running
at deploy time fails with a non-determinism error: the one waiting three days on an
escalation included. These tests catch that before it ships: they replay real runs (recorded
by `python -m tests.record_histories`) with the worker's workflows and its data converter.

When a test here fails after an intended change, do not re-record to make it pass: guard the
new behaviour with `workflow.patched("<change id>")` (histories recorded before the change take
the old path, new executions the new one) until the old recordings replay again. Then record
the new path as well, keeping the old recordings under another name while executions of their
vintage may still run: see tests/record_histories.py.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.workflow import NondeterminismError

from coordinator.execution import ExecutionInput
from coordinator.report import ExecutionReport
from tests.record_histories import HISTORIES, SCENARIOS, SEPARATOR, load_history
from worker import WORKFLOWS
from workflows.execution import ExecutionWorkflow

RECORDED = sorted(HISTORIES.glob("*.json"))
HOW_TO_FIX = (
    "workflow code changed in a way running executions cannot replay. Guard the change with "
    "workflow.patched(...) (see this file's docstring) instead of re-recording."
)


def workflow_type(path: Path) -> str:
    return path.stem.split(SEPARATOR)[1]


@pytest.fixture(scope="module")
def replayer() -> Replayer:
    """As the worker runs workflows: sandboxed, with the pydantic data converter."""
    return Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
async def test_recorded_history_replays(replayer: Replayer, path: Path) -> None:
    history = load_history(path)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {HOW_TO_FIX}\n{result.replay_failure!r}"


def test_the_recordings_cover_every_scenario_and_workflow() -> None:
    """A replay test that replays nothing passes: make sure the recordings are all there."""
    recorded = {p.stem.split(SEPARATOR)[0] for p in RECORDED}
    missing = set(SCENARIOS) - recorded
    assert not missing, f"run: python -m tests.record_histories {' '.join(sorted(missing))}"
    defined = {workflow._Definition.must_from_class(w).name for w in WORKFLOWS}
    assert {workflow_type(p) for p in RECORDED} == defined
    for path in RECORDED:
        assert set(json.loads(path.read_text())) == {"workflowId", "events"}, path.name
        events = load_history(path).events
        started = events[0].workflow_execution_started_event_attributes
        assert started.workflow_type.name == workflow_type(path), path.name
        # A full run: replay checks every command up to the end.
        assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, path
    # Four vintages of five scenarios (@v1 to @v3 and today) and the implementation phase of
    # @v4 (before task-lands-in-one-step; its other workflows run today's code) and of @v5
    # (before task-turn-in-one-activity): about 4.5 MB. Drop the oldest
    # once no execution of its vintage can still be running (tests/record_histories.py).
    assert sum(p.stat().st_size for p in RECORDED) < 5_000_000, "keep the recordings small"


# --- the check can fail: a change that running executions cannot replay ---------------------


@workflow.defn(name="ExecutionWorkflow")
class WaitsFirst(ExecutionWorkflow):
    """ExecutionWorkflow with a timer added before the phases, as a careless change would."""

    @workflow.run
    async def run(self, request: ExecutionInput) -> ExecutionReport:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(request)


@workflow.defn(name="ExecutionWorkflow")
class WaitsFirstWhenPatched(ExecutionWorkflow):
    """The same change made safely: only executions started with the new code wait."""

    @workflow.run
    async def run(self, request: ExecutionInput) -> ExecutionReport:
        if workflow.patched("wait-first"):
            await workflow.sleep(timedelta(seconds=1))
        return await super().run(request)


def _replay_with(workflow_class: type) -> Replayer:
    # Unsandboxed: the sandbox would re-import this test module, pytest and all.
    return Replayer(
        workflows=[workflow_class],
        data_converter=pydantic_data_converter,
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


async def test_an_unguarded_change_is_caught_and_a_patched_one_replays() -> None:
    path = HISTORIES / f"approvals{SEPARATOR}ExecutionWorkflow.json"
    history = load_history(path)

    careless = await _replay_with(WaitsFirst).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert isinstance(careless.replay_failure, NondeterminismError), careless.replay_failure

    patched = await _replay_with(WaitsFirstWhenPatched).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert patched.replay_failure is None, patched.replay_failure
