"""IntegrationPhase: the execution branch is final (one commit per task, plus fix commits);
record its head and what changed. The GitHub handoff (push, pull request, checkboxes, status
comment) joins this phase with the GitHub issue."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from coordinator.branches import DiffRequest
    from coordinator.execution import IntegrationResult, PhaseInput
    from workflows import steps


@workflow.defn(name="IntegrationPhase")
class IntegrationPhaseWorkflow:
    @workflow.run
    async def run(self, request: PhaseInput) -> IntegrationResult:
        ws = request.workspace
        summary = await steps.diff(
            ws,
            DiffRequest(
                workspace=ws.path, base_commit=ws.base_commit, execution_id=request.execution_id
            ),
        )
        return IntegrationResult(head=summary.head, diff=summary)
