"""Validate a plan again on the worker, right before it runs: files may have changed since."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio import activity

from coordinator.execution import PlanCheck, PlanCheckInput
from coordinator.validation import validate_plan


@activity.defn(name="check_plan")
async def check_plan(request: PlanCheckInput) -> PlanCheck:
    """Errors here are a result (the setup phase reports them), not an exception to retry.

    The plan is checked against the execution's clone, so specialists from the repository's
    own `.claude/agents/` count even when the plan names the repository by URL.
    """
    result = await asyncio.to_thread(
        validate_plan,
        request.plan,
        base_dir=Path(request.plan_dir),
        repository_override=Path(request.workspace),
    )
    return PlanCheck(
        errors=[str(p) for p in result.errors],
        warnings=[str(p) for p in result.warnings],
        routes=result.routes,
    )
