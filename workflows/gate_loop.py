"""Gates on the execution branch with their fix loop: run, fix, run again, at most three fix
rounds, then escalate. Used for layer gates and for the validation phase."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from coordinator.branches import FIX_PREFIX
    from coordinator.escalation import Action, Escalation, Resolution
    from coordinator.execution import GateRoundResult, PhaseInput
    from coordinator.plan import Gate
    from coordinator.report import GateSummary
    from coordinator.work import GateLevel, GateResult
    from workflows import steps
    from workflows.attempts import fix_in_worktree
    from workflows.phase import PhaseWorkflow, failing_output, first_line
    from workflows.until_resolved import ATTEMPTS, Done, Miss, Retry, UntilResolved, retry_or


class GateLoop:
    """One run of the gates is an attempt; a failing run but the last is followed by a fix.
    Four runs (three fixes) to a round, then a human. `await GateLoop(...).run()` is the
    round's result."""

    def __init__(
        self,
        phase: PhaseWorkflow,
        request: PhaseInput,
        *,
        level: GateLevel,
        scope: str,
        gates: list[Gate],
        phase_name: str,
    ) -> None:
        self.phase, self.request = phase, request
        self.level, self.scope, self.gates, self.phase_name = level, scope, gates, phase_name
        self.results: list[GateResult] = []
        self.until = UntilResolved[GateRoundResult](strikes=ATTEMPTS + 1)

    async def run(self) -> GateRoundResult:
        return await self.until.run(self._attempt, self._ask)

    def _result(self, *, passed: bool = False, aborted: bool = False) -> GateRoundResult:
        return GateRoundResult(
            gates=[GateSummary.of(r) for r in self.results],
            passed=passed,
            aborted=aborted,
            head=self.request.workspace.head_commit,
        )

    async def _attempt(self, strike: int) -> Done[GateRoundResult] | Miss:
        ws, runs = self.request.workspace, self.until.tries
        # No merge may move the branch under the gates.
        async with self.phase.branch_lock:
            await self.phase.landings.drained()
            self.results = [
                await steps.run_gate(
                    ws,
                    self.request.execution_id,
                    self.level,
                    self.scope,
                    gate,
                    ws.path,
                    runs,
                    self.request.environment,
                )
                for gate in self.gates
            ]
        await self.phase.notify_gates(self.results)
        if all(r.passed for r in self.results):
            return Done(self._result(passed=True))
        if strike == self.until.strikes:
            return Miss.STRIKE
        problem = await fix_in_worktree(
            self.phase,
            self.request,
            fix_id=f"{FIX_PREFIX}{self.phase_name}-{_safe(self.scope)}-{runs}",
            title=f"Fix the {self.level} gates ({self.scope})",
            prompt=f"The {self.level} gates of {self.scope} fail on the execution branch. Make "
            "them pass with the smallest correct change; do not disable or weaken any gate.",
            feedback=failing_output(self.results),
            guidance=self.until.take_guidance(),  # given once, to the first fix after the answer
            attempt=strike,
        )
        if self.phase.budget_aborted:  # a human stopped at the budget question
            return Done(self._result(aborted=True))
        if problem:
            workflow.logger.info("fix round %s for %s gates failed: %s", runs, self.scope, problem)
        return Miss.STRIKE

    async def _ask(self) -> Retry | Done[GateRoundResult]:
        level, scope, results = self.level, self.scope, self.results
        failing = [r for r in results if not r.passed]
        answer = await self.phase.escalate(
            self.request,
            Escalation(
                id=f"{self.phase_name}:{_safe(scope)}",
                phase=self.phase_name,
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
        return retry_or(answer, self._given_up)

    def _given_up(self, answer: Resolution) -> GateRoundResult:
        return self._result(aborted=answer.action == Action.ABORT)


def _safe(scope: str) -> str:
    """Scopes name worktrees and escalation ids: keep them to id characters."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in scope.lower())
    return cleaned.strip("-.") or "gates"
