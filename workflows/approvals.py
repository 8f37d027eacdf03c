"""Approvals: a human says yes or no before the implementation starts or before the handoff.

`Approvals` asks (once: after a continue-as-new the question stands, maybe answered while
the last run handed over), takes the `approve` / `reject` answers, and waits, durably, for as
long as it takes: when the history grows long in the meantime (signals, updates) it calls
the conductor's `hand_over` (a continue-as-new). Workflow code: deterministic, no I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from coordinator.escalation import Approval, ApprovalAnswer, ApprovalName
    from coordinator.report import Progress

# A run this short never hands over (no loop of empty runs when the server suggests it).
MIN_RUN_EVENTS = 20
# Executions started before it wait on in one run, however long the history grows.
CONTINUE_AS_NEW_PATCH = "execution-continue-as-new"


class Approvals:
    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._declined_continue_as_new = False  # code from before CONTINUE_AS_NEW_PATCH

    def pending(self) -> Approval:
        """The approval waiting for an answer; refuses an answer when none is."""
        approval = self._progress.pending_approval
        if approval is None:
            raise ApplicationError("no approval is pending", non_retryable=True)
        return approval

    def answer(self, state: Literal["approved", "rejected"], answer: ApprovalAnswer) -> Approval:
        approval = self.pending()
        approval.state = state
        approval.answer = answer
        approval.answered_at = workflow.now()
        return approval

    def ask(self, name: ApprovalName, question: str) -> tuple[Approval, bool]:
        """The approval `name`, and whether it was asked just now (not by an earlier run)."""
        asked = next((a for a in reversed(self._progress.approvals) if a.name == name), None)
        if asked is not None:
            return asked, False
        approval = Approval(name=name, question=question, asked_at=workflow.now())
        self._progress.approvals.append(approval)
        return approval, True

    async def wait(self, approval: Approval, hand_over: Callable[[], Awaitable[None]]) -> None:
        """Until the approval is answered. `hand_over` continues as new; it returns only if
        the approval was answered while it handed over."""
        while approval.state == "pending":
            await workflow.wait_condition(
                lambda: approval.state != "pending" or self._time_to_hand_over()
            )
            if approval.state == "pending":
                if workflow.patched(CONTINUE_AS_NEW_PATCH):
                    await hand_over()
                else:
                    self._declined_continue_as_new = True  # code from before: wait on

    def _time_to_hand_over(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            and info.get_current_history_length() >= MIN_RUN_EVENTS
            and not self._declined_continue_as_new
        )


def rejection_note(approval: Approval) -> str:
    reason = approval.answer.reason if approval.answer else ""
    return (
        f"Rejected at {approval.name}"
        + (f": {reason}" if reason else "")
        + "; work so far is on the branch."
    )
