"""Upgrading the coordinator while an execution runs: the worker is stopped while an execution
waits on a human, a worker with changed workflow code (guarded by `workflow.patched`) takes
over, the human answers, and the execution completes on the new code."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio import workflow
from temporalio.client import Client

# The sandbox re-imports this module to check the workflow in it: pass the rest through.
with workflow.unsafe.imports_passed_through():
    from coordinator.escalation import Action, Escalation, Resolution
    from coordinator.execution import ImplementationResult, PhaseInput
    from coordinator.report import TaskState
    from tests.engine_support import (
        branch_log,
        git,
        make_repo,
        pending_escalation,
        running_worker,
        shell_task,
        start,
        write_plan,
    )
    from workflows.implementation_phase import ImplementationPhaseWorkflow


NOTE = " (answered under coordinator v2)"


@workflow.defn(name="ImplementationPhase")
class ImplementationPhaseV2(ImplementationPhaseWorkflow):
    """Tomorrow's code: the guidance a human gives is passed on with a note. Executions that
    were already waiting when it was deployed take the new path only after the patch point."""

    @workflow.run
    async def run(self, request: PhaseInput) -> ImplementationResult:
        return await super().run(request)

    async def _slot(self, state: TaskState, guidance: str, *, keep_work: bool = False) -> str:
        if workflow.patched("guidance-note"):
            guidance += NOTE
        return await super()._slot(state, guidance, keep_work=keep_work)


async def test_a_waiting_execution_completes_on_upgraded_workflow_code(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    plan = write_plan(
        tmp_path,
        {
            "tasks": [
                shell_task("first", "echo one > one.txt", depends_on=[]),
                # Fails until a human gives guidance; then writes what it was told.
                shell_task(
                    "needs-help",
                    'test -n "$COORD_GUIDANCE" && printf "%s" "$COORD_GUIDANCE" > help.txt',
                    depends_on=["first"],
                ),
            ]
        },
    )
    async with running_worker(client, task_queue, tmp_path / "v1"):
        handle = await start(client, task_queue, plan)
        escalation = await pending_escalation(handle, timeout=120)
    # v1 is gone; the execution waits on the server alone. v2 takes over.
    async with running_worker(
        client, task_queue, tmp_path / "v1", workflows=[ImplementationPhaseV2]
    ):
        answered = await handle.execute_update(
            "resolve_escalation",
            Resolution(escalation_id=escalation.id, action=Action.RETRY, guidance="use printf"),
            result_type=Escalation,
        )
        assert answered.state == "answered"
        report = await asyncio.wait_for(handle.result(), timeout=120)

    assert report.status == "Complete", report.problems
    assert sorted(branch_log(report)) == ["first: Task first", "needs-help: Task needs-help"]
    ws = report.workspace
    assert ws is not None
    # The new code's behaviour after the answer, on the branch.
    assert git(Path(ws.path), "show", f"{ws.branch}:help.txt") == f"use printf{NOTE}"
