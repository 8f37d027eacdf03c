"""Which question a human's answer is for, and whether the answer fits it.

The execution's update validators and signal handlers use these to refuse an answer before
it is accepted: no such escalation, already answered, a budget answer without a budget.
Pure checks over the progress; they raise a non-retryable ApplicationError saying what is
wrong (the update's caller sees it). Workflow code: deterministic, no I/O.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from coordinator.escalation import Action, Escalation, Resolution
    from coordinator.report import Progress


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
