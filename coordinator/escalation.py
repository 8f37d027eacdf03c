"""The human side of an execution: escalations (3 strikes, then a question) and approvals."""

from __future__ import annotations

import json
import shlex
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from coordinator.attempts import AttemptFailure


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
    # Every failed attempt of the round that escalates, oldest first (each trimmed): the last
    # error alone may not say what started it (a merge conflict, say).
    failures: list[AttemptFailure] = Field(default_factory=list)
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


# --- the exact commands that answer a waiting execution (the CLI and GitHub comments) ---------

GUIDANCE_PLACEHOLDER = "..."


def resolve_input(escalation_id: str, action: str, guidance: str = "") -> str:
    """The `--input` of `temporal workflow update execute` for a resolution, shell-quoted."""
    payload: dict[str, str] = {"escalation_id": escalation_id, "action": action}
    if guidance:
        payload["guidance"] = guidance
    return shlex.quote(json.dumps(payload))


def resolve_commands(execution_id: str, e: Escalation) -> tuple[list[str], list[str]]:
    """(`coord` commands, the equivalent `temporal` command) answering an escalation. A
    budget escalation retries with a higher budget (twice the larger of limit and spending)
    and only a task's budget can be skipped."""
    eid, esc = shlex.quote(execution_id), shlex.quote(e.id)
    if e.budget_usd is not None:
        raised = round(max(e.budget_usd, e.spent_usd or 0.0) * 2, 2)
        payload = {"escalation_id": e.id, "action": "retry", "budget": raised}
        skip = [f"coord resolve {eid} {esc} --skip"] if e.task_id else []
        coord = [
            f"coord resolve {eid} {esc} --retry --budget {raised}",
            *skip,
            f"coord resolve {eid} {esc} --abort",
        ]
        temporal_input = shlex.quote(json.dumps(payload))
    else:
        coord = [
            f'coord resolve {eid} {esc} --retry --guidance "{GUIDANCE_PLACEHOLDER}"',
            f"coord resolve {eid} {esc} --skip",
            f"coord resolve {eid} {esc} --abort",
        ]
        temporal_input = resolve_input(e.id, "retry", GUIDANCE_PLACEHOLDER)
    temporal = [
        f"temporal workflow update execute --workflow-id {eid} --name resolve_escalation "
        f"--input {temporal_input}"
    ]
    return coord, temporal


def approval_commands(execution_id: str) -> tuple[list[str], list[str]]:
    """(`coord` commands, the equivalent `temporal` commands) answering an approval."""
    eid = shlex.quote(execution_id)
    coord = [f"coord approve {eid}", f'coord reject {eid} --reason "{GUIDANCE_PLACEHOLDER}"']
    temporal = [
        f"temporal workflow update execute --workflow-id {eid} --name approve --input '{{}}'",
        f"temporal workflow update execute --workflow-id {eid} --name reject "
        f"--input {shlex.quote(json.dumps({'reason': GUIDANCE_PLACEHOLDER}))}",
    ]
    return coord, temporal
