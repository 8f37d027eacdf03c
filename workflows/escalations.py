"""Escalations as the execution keeps them: raised by a phase (three strikes, a budget
spent), answered by a human through the execution, or closed by the plan's
escalation_timeout when nobody did.

`Escalations` is the one writer of the escalations in the progress. Its checks refuse an
answer before it is accepted (no such escalation, already answered, a budget answer without
a budget) with a non-retryable ApplicationError saying what is wrong (the update's caller
sees it). Workflow code: deterministic, no I/O.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from coordinator.escalation import Action, Escalation, Resolution
    from coordinator.report import Progress
    from workflows.task_board import TaskBoard


class Escalations:
    def __init__(self, progress: Progress, tasks: TaskBoard) -> None:
        self._progress = progress
        self._tasks = tasks

    def raised(self, escalation: Escalation) -> None:
        """A phase asks a human; the escalation says how far the tasks got."""
        escalation.completed = self._tasks.passed()
        escalation.remaining = self._tasks.unfinished()
        self._progress.escalations.append(escalation)

    def closed(self, escalation: Escalation) -> bool:
        """The plan's escalation_timeout answered it: nobody did. False: a human's answer
        got there first and stands."""
        escalations = self._progress.escalations
        if any(e.id == escalation.id and e.state != "pending" for e in escalations):
            return False
        self._progress.escalations = [
            escalation if e.id == escalation.id else e for e in escalations
        ]
        return True

    def check(self, answer: Resolution) -> Escalation:
        """The escalation the answer is for, if the answer fits it; else a clear refusal."""
        escalation = pending_escalation(self._progress, answer)
        check_budget_answer(escalation, answer)
        return escalation

    def answer(self, answer: Resolution) -> Escalation:
        """Record a human's answer (checked already); the phase that asked still needs it."""
        escalation = pending_escalation(self._progress, answer)
        if escalation.budget_usd is not None and escalation.task_id is None and answer.budget:
            self._progress.budget_usd = answer.budget  # later phases start from it
        escalation.state = "answered"
        escalation.answer = answer.model_copy(update={"escalation_id": escalation.id})
        escalation.answered_at = workflow.now()
        return escalation

    def withdraw_pending(self) -> None:
        """The execution finished: nobody needs to answer."""
        for escalation in self._progress.pending_escalations:
            escalation.state = "withdrawn"


def timed_out_note(escalation: Escalation) -> str | None:
    """What the human learns of an escalation nobody answered in time."""
    if escalation.answer is None:
        return None
    return (
        f"Nobody answered escalation {escalation.id} in time: the plan's "
        f"on_escalation_timeout applied ({escalation.answer.action.value}; "
        f"{escalation.reason})."
    )


def pending_escalation(progress: Progress, answer: Resolution) -> Escalation:
    """The escalation the answer names, or the only pending one when it names none."""
    pending = progress.pending_escalations
    if answer.escalation_id is None:
        if len(pending) == 1:
            return pending[0]
        ids = ", ".join(e.id for e in pending) or "none"
        raise ApplicationError(
            f"name the escalation to answer: {len(pending)} are pending ({ids})",
            non_retryable=True,
        )
    for escalation in progress.escalations:
        if escalation.id == answer.escalation_id:
            if escalation.state != "pending":
                raise ApplicationError(
                    f"escalation {escalation.id} was already {escalation.state}",
                    non_retryable=True,
                )
            return escalation
    ids = ", ".join(e.id for e in pending) or "none"
    raise ApplicationError(
        f"no escalation '{answer.escalation_id}' (pending: {ids})", non_retryable=True
    )


def check_budget_answer(escalation: Escalation, answer: Resolution) -> None:
    """A budget escalation needs a higher budget to retry; other escalations take none."""
    if escalation.budget_usd is None:
        if answer.budget is not None:
            raise ApplicationError(
                f"escalation {escalation.id} is not about a budget: leave out --budget",
                non_retryable=True,
            )
        return
    if answer.action == Action.RETRY:
        spent = escalation.spent_usd or 0.0
        if answer.budget is None or answer.budget <= spent:
            raise ApplicationError(
                f"escalation {escalation.id}: {escalation.reason}; retrying needs a budget "
                f"above ${spent:.2f} (--budget USD), or answer --abort",
                non_retryable=True,
            )
    elif answer.action == Action.SKIP and escalation.task_id is None:
        raise ApplicationError(
            f"escalation {escalation.id}: the execution's budget cannot be skipped: retry "
            "with --budget USD, or --abort",
            non_retryable=True,
        )
