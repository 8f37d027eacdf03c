"""Gates on the execution branch with their fix loop: run, fix, run again, at most three fix
rounds, then escalate. Used for layer gates and for the validation phase."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from coordinator.escalation import Action, Escalation
    from coordinator.execution import GateRoundResult, PhaseInput
    from coordinator.plan import Gate
    from coordinator.report import GateSummary
    from coordinator.work import GateLevel, GateResult
    from workflows import steps
    from workflows.phase import ATTEMPTS, FIX_PREFIX, PhaseWorkflow, failing_output, first_line


async def run_gates_with_fixes(
    phase: PhaseWorkflow,
    request: PhaseInput,
    *,
    level: GateLevel,
    scope: str,
    gates: list[Gate],
    phase_name: str,
) -> GateRoundResult:
    ws = request.workspace
    runs = 0
    guidance = ""
    while True:
        results: list[GateResult] = []
        for fix_round in range(ATTEMPTS + 1):
            runs += 1
            # No merge may move the branch under the gates.
            async with phase.branch_lock:
                results = [
                    await steps.run_gate(
                        ws,
                        request.execution_id,
                        level,
                        scope,
                        gate,
                        ws.path,
                        runs,
                        request.environment,
                    )
                    for gate in gates
                ]
            await phase.notify_gates(results)
            if all(r.passed for r in results):
                return GateRoundResult(
                    gates=[GateSummary.of(r) for r in results], passed=True, head=ws.head_commit
                )
            if fix_round == ATTEMPTS:
                break
            problem = await phase.fix_in_worktree(
                request,
                fix_id=f"{FIX_PREFIX}{phase_name}-{_safe(scope)}-{runs}",
                title=f"Fix the {level} gates ({scope})",
                prompt=f"The {level} gates of {scope} fail on the execution branch. Make them "
                "pass with the smallest correct change; do not disable or weaken any gate.",
                feedback=failing_output(results),
                guidance=guidance,
                attempt=fix_round + 1,
            )
            guidance = ""  # given once, to the first fix after the answer
            if phase.budget_aborted:  # a human stopped at the budget question
                return GateRoundResult(
                    gates=[GateSummary.of(r) for r in results],
                    passed=False,
                    aborted=True,
                    head=ws.head_commit,
                )
            if problem:
                workflow.logger.info("fix round %s for %s gates failed: %s", runs, scope, problem)
        failing = [r for r in results if not r.passed]
        answer = await phase.escalate(
            request,
            Escalation(
                id=f"{phase_name}:{_safe(scope)}",
                phase=phase_name,
                reason=f"{len(failing)} {level} gate(s) of {scope} still fail after "
                f"{ATTEMPTS} fix rounds",
                question=f"The {level} gates of {scope} keep failing: retry with guidance for "
                "the fixer, skip them (continue with failing gates), or abort?",
                last_error=first_line(failing[0].output_tail) if failing else "",
                output_tail=failing_output(results)[-4000:],
                attempts=ATTEMPTS,
                artifacts=[r.log_path for r in failing],
                recommended=[
                    "Read the gate logs listed under artifacts",
                    "Retry with guidance that names the root cause",
                    "Skip only if the gate is known to be broken",
                ],
            ),
        )
        if answer.action == Action.RETRY:
            guidance = answer.guidance
            continue
        summaries = [GateSummary.of(r) for r in results]
        return GateRoundResult(
            gates=summaries,
            passed=False,
            aborted=answer.action == Action.ABORT,
            head=ws.head_commit,
        )


def _safe(scope: str) -> str:
    """Scopes name worktrees and escalation ids: keep them to id characters."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in scope.lower())
    return cleaned.strip("-.") or "gates"
