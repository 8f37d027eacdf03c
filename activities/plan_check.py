"""Validate a plan again on the worker, right before it runs: files may have changed since."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio import activity

from coordinator.execution import PlanCheck, SetupInput
from coordinator.plan import is_clone_url
from coordinator.validation import validate_plan


@activity.defn(name="check_plan")
async def check_plan(request: SetupInput) -> PlanCheck:
    """Errors here are a result (the setup phase reports them), not an exception to retry."""
    override = None if is_clone_url(request.repository) else Path(request.repository)
    result = await asyncio.to_thread(
        validate_plan, request.plan, base_dir=Path(request.plan_dir), repository_override=override
    )
    return PlanCheck(
        errors=[str(p) for p in result.errors],
        warnings=[str(p) for p in result.warnings],
        routes=result.routes,
    )
