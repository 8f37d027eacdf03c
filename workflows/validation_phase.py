"""ValidationPhase: the system gates on the execution branch, with the fix loop."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from coordinator.execution import GateRoundResult, PhaseInput
    from workflows.gate_loop import GateLoop
    from workflows.phase import PhaseWorkflow


@workflow.defn(name="ValidationPhase")
class ValidationPhaseWorkflow(PhaseWorkflow):
    @workflow.run
    async def run(self, request: PhaseInput) -> GateRoundResult:
        return await GateLoop(
            self,
            request,
            level="system",
            scope="system",
            gates=request.plan.gates,
            phase_name="validation",
        ).run()
