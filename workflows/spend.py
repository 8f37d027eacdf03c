"""What a specialist's attempt spent, read from its result or from the error it failed with.
Workflow code: deterministic, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

with workflow.unsafe.imports_passed_through():
    from coordinator.claude import AttemptSpend
    from coordinator.work import SpecialistResult


def spend_of(result: SpecialistResult) -> AttemptSpend | None:
    """What an attempt that returned a result spent (None for command specialists)."""
    if not (result.tokens_in or result.tokens_out or result.cost_usd):
        return None
    return AttemptSpend(
        tokens_in=result.tokens_in, tokens_out=result.tokens_out, cost_usd=result.cost_usd
    )


def failed_spend(err: BaseException) -> AttemptSpend | None:
    """What a Claude attempt that failed for good had spent: its error's details, or its last
    heartbeat when the worker died (the agent loop puts its usage in both)."""
    cause = err.cause if isinstance(err, ActivityError) else None
    details: Sequence[Any] = ()
    if isinstance(cause, ApplicationError):
        details = cause.details
    elif isinstance(cause, TemporalTimeoutError):
        details = cause.last_heartbeat_details
    for detail in details:
        if isinstance(detail, dict) and "tokens_in" in detail:
            return AttemptSpend.model_validate(
                {k: detail.get(k) for k in ("tokens_in", "tokens_out", "cost_usd")}
            )
    return None
