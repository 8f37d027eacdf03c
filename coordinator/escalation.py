"""The human side of an execution: escalations (3 strikes, then a question) and approvals."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, model_validator


class Action(StrEnum):
    RETRY = "retry"  # try again (attempts start over), with the human's guidance
    SKIP = "skip"  # give up on this task (its dependants follow the plan's on_skip)
    ABORT = "abort"  # end the execution: Partial, everything done so far kept on the branch


class Resolution(BaseModel):
    """A human's answer to an escalation (the `resolve_escalation` update and signal)."""

    escalation_id: str | None = Field(
        default=None, description="which escalation; may be left out when only one is pending"
    )
    action: Action
    guidance: str = Field(default="", max_length=20_000)
    # A budget escalation's new limit in USD (the execution's, or the task's).
    budget: float | None = Field(default=None, gt=0)
    by: str = ""

    @model_validator(mode="after")
    def _guidance_only_for_retry(self) -> Resolution:
        if self.guidance and self.action != Action.RETRY:
            raise ValueError("guidance goes with action 'retry' only")
        if self.budget is not None and self.action != Action.RETRY:
            raise ValueError("a budget goes with action 'retry' only")
        return self


# withdrawn: the execution ended (abort elsewhere, cancel) before anyone answered.
EscalationState = Literal["pending", "answered", "timed_out", "withdrawn"]


class Escalation(BaseModel):
    """A durable question to a human, raised after three failed attempts."""

    id: str
    phase: str
    task_id: str | None = None  # None for a gate round (layer or system gates) or the review
    reason: str
    question: str
    last_error: str = ""
    output_tail: str = ""
    attempts: int = 0
    completed: list[str] = Field(default_factory=list)
    remaining: list[str] = Field(default_factory=list)
    artifacts: list[str] = Field(default_factory=list)
    recommended: list[str] = Field(default_factory=list)
    # Set when a budget was reached: the limit and what was spent (USD). Retrying needs a
    # higher `budget` in the answer.
    budget_usd: float | None = None
    spent_usd: float | None = None
    raised_at: datetime | None = None
    # The phase workflow that waits for the answer; the execution forwards it there.
    waiting_workflow_id: str = ""
    state: EscalationState = "pending"
    answer: Resolution | None = None
    answered_at: datetime | None = None


ApprovalName = Literal["before_start", "before_handoff"]


class ApprovalAnswer(BaseModel):
    """The `approve` / `reject` update and signal payload."""

    reason: str = Field(default="", max_length=20_000)
    by: str = ""


class Approval(BaseModel):
    name: ApprovalName
    question: str
    state: Literal["pending", "approved", "rejected"] = "pending"
    asked_at: datetime | None = None
    answered_at: datetime | None = None
    answer: ApprovalAnswer | None = None
