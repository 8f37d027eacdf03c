"""What each phase's result means for the execution: the phase's line in the progress (done
or failed, and a summary), notes for the human, and whether the run stops there; and, from
setup's result, what every later phase works from.

Pure functions of a phase's result: the conductor runs the phase, then applies its outcome.
Workflow code: deterministic, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from coordinator.execution import (
        ExecutionInput,
        GateRoundResult,
        ImplementationResult,
        IntegrationResult,
        PhaseInput,
        ReviewResult,
        SetupResult,
    )
    from coordinator.plan import Plan
    from coordinator.report import ExecutionStatus, PhaseStatus, Progress, TaskState


class StopExecution(Exception):
    """Ends the run early with a status: an abort, a rejection, a failed setup."""

    def __init__(self, status: ExecutionStatus, todo: str) -> None:
        super().__init__(todo)
        self.status = status
        self.todo = todo


@dataclass(frozen=True)
class PhaseOutcome:
    status: PhaseStatus
    summary: str
    todo: list[str] = field(default_factory=list)  # for the human; the run goes on
    stop: StopExecution | None = None  # the run ends here


def setup(setup: SetupResult, plan: Plan) -> PhaseOutcome:
    if not setup.ok:
        return PhaseOutcome(
            "failed",
            f"{len(setup.check.errors)} plan problem(s)",
            stop=StopExecution(
                ExecutionStatus.FAILED, "Fix the problems listed above and run the plan again."
            ),
        )
    if setup.aborted:
        return PhaseOutcome(
            "failed",
            "aborted: a setup command kept failing",
            stop=StopExecution(
                ExecutionStatus.PARTIAL,
                "Aborted in setup: a setup command kept failing (see Escalations); nothing "
                "was implemented.",
            ),
        )
    todo = [
        f"Setup command '{name}' was skipped by a human: gates and specialists ran without it."
        for name in setup.skipped_setup
    ]
    ws = setup.workspace
    summary = f"branch {ws.branch} from {ws.base_branch}"
    if plan.setup:
        ran = len(plan.setup) - len(setup.skipped_setup)
        summary += f", {ran} of {len(plan.setup)} setup commands"
    return PhaseOutcome("done", summary, todo)


def phases_input(request: ExecutionInput, setup: SetupResult) -> PhaseInput:
    """What every phase after setup works from."""
    return PhaseInput(
        execution_id=request.execution_id,
        plan=request.plan,
        workspace=setup.workspace,
        routes=setup.check.routes,
        specialists=setup.check.specialists,
        environment=setup.environment,
        context_paths=setup.context_paths,
    )


def implementation(result: ImplementationResult, tasks: list[TaskState]) -> PhaseOutcome:
    """`tasks`: every task's state once the phase's last updates are in."""
    passed = sum(t.status == "passed" for t in tasks)
    stop = (
        StopExecution(ExecutionStatus.PARTIAL, "Aborted: finished tasks are on the branch.")
        if result.aborted
        else None
    )
    return PhaseOutcome("done", f"{passed} of {len(tasks)} tasks passed", stop=stop)


def validation(result: GateRoundResult) -> PhaseOutcome:
    verdict = "passed" if result.passed else "failing (skipped by a human)"
    stop = (
        StopExecution(ExecutionStatus.PARTIAL, "Aborted in validation: gates still fail.")
        if result.aborted
        else None
    )
    return PhaseOutcome("done", f"system gates {verdict}", stop=stop)


def integration(result: IntegrationResult, branch: str, *, handed_off: bool) -> PhaseOutcome:
    """`handed_off`: the execution keeps a GitHub handoff, so the phase's GitHub result counts."""
    summary = f"{branch} at {result.head[:12]}, {result.diff.total_files} files changed"
    github = result.github if handed_off else None
    if github is None:
        return PhaseOutcome("done", summary)
    if github.pull_request is not None:
        summary += f"; pull request #{github.pull_request.number}"
    stop = (
        StopExecution(ExecutionStatus.PARTIAL, "Aborted at the GitHub handoff.")
        if github.aborted
        else None
    )
    return PhaseOutcome("done", summary, stop=stop)


def review(review: ReviewResult) -> PhaseOutcome:
    summary = f"{review.verdict} ({review.rounds} rounds)"
    if review.aborted:
        return PhaseOutcome(
            "done",
            summary,
            stop=StopExecution(ExecutionStatus.PARTIAL, "Aborted in review: the findings stand."),
        )
    todo = []
    if review.verdict != "approve":
        todo.append("The reviewer's findings were not all addressed: see Review.")
    return PhaseOutcome("done", summary, todo)


def ending(
    status: ExecutionStatus, progress: Progress, human_todo: list[str]
) -> tuple[ExecutionStatus, list[str]]:
    """How the run ended, all told, and what the human learns of it besides `human_todo`:
    gates a human skipped are still failing, and a run that completed with a task not
    passed or something left for a human is partial."""
    if status != ExecutionStatus.COMPLETED:
        return status, []
    notes = []
    failing = [f"{g.level} gate {g.name} ({g.scope})" for g in progress.gates if not g.passed]
    if failing:
        notes.append(f"Still failing, skipped by a human: {', '.join(failing)}.")
    if any(t.status != "passed" for t in progress.tasks) or human_todo or notes:
        status = ExecutionStatus.PARTIAL
    return status, notes


def review_note(review: ReviewResult) -> str:
    """The review as the progress and the report show it."""
    return f"{review.verdict} after {review.rounds} round(s)" + (
        f":\n\n```\n{review.findings[-2000:]}\n```" if review.findings else ""
    )
