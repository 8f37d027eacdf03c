"""A phase's coalesced task updates reach the execution whatever the moment the phase ends.

The flusher of `PhaseWorkflow` sends the gathered task states to the parent every couple of
seconds. A phase that ended while that signal was in flight used to cancel it: the phase
failed with "Signal was cancelled before being sent" (and the execution read Cancelled), or,
when the signal had already gone out, the SDK swallowed the cancel and the phase waited for
ever on a flusher that never stopped. These tests drive both interleavings exactly, on the
time-skipping server: the child below ends in the very workflow task in which its flusher's
signal is initiated, or in the one in which that signal's delivery is confirmed.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from coordinator.report import TaskState
from workflows.phase import TASKS_UPDATE, PhaseWorkflow

NOOP = "noop"


def _state(status: str) -> TaskState:
    return TaskState.model_validate({"id": "a", "title": "A", "status": status})


@workflow.defn(name="FlushRaceChild")
class FlushRaceChild(PhaseWorkflow):
    def __init__(self) -> None:
        super().__init__()
        self.mode = ""
        self.flushing = False
        self.run_signalled = False

    async def flush_updates(self) -> None:
        if not self.flushing and self._outbox:
            self.flushing = True  # the run wakes up in this workflow task (conditions)
            if self.mode == "resolved":
                # The run's own signal goes first, so its confirmation wakes the run before
                # the flusher in the workflow task that confirms both.
                await workflow.wait_condition(lambda: self.run_signalled)
        await super().flush_updates()

    @workflow.run
    async def run(self, mode: str) -> None:
        self.mode = mode
        self._coalesce = True
        self._updates_since = workflow.now()
        await self.notify_task(_state("running"))
        await workflow.wait_condition(lambda: self.flushing)
        if mode == "resolved":
            self.run_signalled = True
            await self._tell_execution(NOOP, "x")
        await self.notify_task(_state("passed"))
        await self.stop_updates()


@workflow.defn(name="FlushRaceParent")
class FlushRaceParent:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @workflow.signal(name=TASKS_UPDATE)
    def tasks_update(self, states: list[TaskState]) -> None:
        self.seen += [f"{s.id}:{s.status}" for s in states]

    @workflow.signal(name=NOOP)
    def noop(self, _: str) -> None:
        pass

    @workflow.run
    async def run(self, mode: str) -> list[str]:
        await workflow.execute_child_workflow(
            FlushRaceChild.run,
            mode,
            id=f"{workflow.info().workflow_id}/child",
            # A child that never ends fails here (the time-skipping server jumps to it)
            # instead of hanging the test.
            execution_timeout=timedelta(hours=1),
        )
        return self.seen


@pytest.mark.parametrize("mode", ["in-flight", "resolved"])
async def test_a_phase_ending_while_its_updates_are_sent_ends_cleanly(
    time_skipping_env: WorkflowEnvironment, mode: str
) -> None:
    client = time_skipping_env.client
    queue = f"flush-{uuid.uuid4()}"
    async with Worker(
        client, task_queue=queue, workflows=[FlushRaceParent, FlushRaceChild], activities=[]
    ):
        try:
            seen = await client.execute_workflow(
                FlushRaceParent.run, mode, id=f"flush-race-{uuid.uuid4()}", task_queue=queue
            )
        except WorkflowFailureError as err:
            pytest.fail(f"the phase did not end cleanly: {err.cause}")
    # Nothing lost: the last state the phase had reached is the last the parent saw.
    assert seen[-1] == "a:passed"
