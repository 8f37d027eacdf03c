"""Validate a plan again on the worker, right before it runs: files may have changed since."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

from temporalio import activity

from activities.claude.tools import permissions_for
from activities.claude_code import checks as claude_code
from activities.heartbeat import heartbeating
from activities.jail import worker_jail
from coordinator.execution import (
    DEFAULT_SPECIALIST_TIMEOUT_S,
    PlanCheck,
    PlanCheckInput,
    SpecialistRef,
)
from coordinator.plan import Plan, local_path
from coordinator.specialists import load_registry
from coordinator.validation import validate_plan


@activity.defn(name="check_plan")
async def check_plan(request: PlanCheckInput) -> PlanCheck:
    """Errors here are a result (the setup phase reports them), not an exception to retry.

    The plan is checked against the execution's clone, so specialists from the repository's
    own `.claude/agents/` count even when the plan names the repository by URL.
    """
    async with heartbeating(request.workspace):
        return await asyncio.to_thread(_check, request)


def _check(request: PlanCheckInput) -> PlanCheck:
    plan, plan_dir, workspace = request.plan, Path(request.plan_dir), Path(request.workspace)
    specialists_dir = local_path(plan.specialists_dir, plan_dir) if plan.specialists_dir else None
    registry = load_registry(specialists_dir=specialists_dir, repository=workspace)
    result = validate_plan(
        plan, base_dir=plan_dir, repository_override=workspace, registry=registry
    )
    # The fixer defaults to each task's own specialist for tasks, and to the built-in
    # `fixer` for gate rounds and review findings.
    roles = (plan.fixer or "fixer", plan.reviewer)
    wanted = {*result.routes.values(), *(name for name in roles if name)}
    refs = {}
    warnings = [str(p) for p in result.warnings]
    for name in sorted(wanted):
        if (spec := registry.get(name)) is not None:
            backend = spec.backend_for(plan.agents_backend)
            if backend == "claude":
                warnings += _tool_warnings(spec.name, spec.source, spec.tools)
            elif backend == "claude-code":
                warnings += claude_code.tool_warnings(spec.name, spec.source, spec.tools)
            refs[name] = SpecialistRef(
                name=spec.name,
                backend=backend,
                command=spec.command,
                timeout_s=spec.timeout or DEFAULT_SPECIALIST_TIMEOUT_S,
                max_turns=spec.max_turns,
                source=spec.source,
            )
    errors = [str(p) for p in result.errors]
    if problem := _claude_key_problem(plan, result.routes, refs):
        errors.append(problem)
    if problem := claude_code.missing_requirements(_callers(plan, result.routes, refs)):
        errors.append(problem)
    # The plan passes these through from the worker's environment: this worker must have them.
    missing = [name for name in plan.env_from if name not in os.environ]
    if missing:
        errors.append(
            f"env_from: {', '.join(missing)} not set in the environment of the worker on "
            f"{socket.gethostname()}; set them there (coord worker inherits its shell's)"
        )
    if plan.confine == "required" and not (jail := worker_jail()).available:
        errors.append(
            f"confine: required, but the worker on {socket.gethostname()} cannot jail "
            f"commands: {jail.note}; install bubblewrap there, or set `confine: auto` to run "
            "without the jail"
        )
    elif plan.confine == "required" and (note := worker_jail().network_warning()):
        # The filesystem jail is there; the network one is not.
        warnings.append(
            f"confine: required: the worker on {socket.gethostname()} jails the filesystem, "
            f"but {note}; install slirp4netns there"
        )
    return PlanCheck(
        errors=errors,
        warnings=warnings,
        routes=result.routes,
        specialists=refs,
    )


def _tool_warnings(name: str, source: str, tools: list[str]) -> list[str]:
    """Once per execution: tools a Claude specialist names that it will not get."""
    perms = permissions_for(tools)
    warnings = []
    if perms.unknown:
        warnings.append(
            f"{source}: specialist {name}: unknown tools ignored: {', '.join(perms.unknown)}"
        )
    if perms.unavailable:
        warnings.append(
            f"{source}: specialist {name}: tools not provided by the claude backend: "
            f"{', '.join(perms.unavailable)}"
        )
    if perms.unenforced_scopes:
        warnings.append(
            f"{source}: specialist {name}: tool scopes are not enforced (the whole tool is "
            f"granted): {', '.join(perms.unenforced_scopes)}"
        )
    return warnings


def _claude_key_problem(
    plan: Plan, routes: dict[str, str], refs: dict[str, SpecialistRef]
) -> str | None:
    """Claude specialists this execution will call, on a worker without a key: say so now,
    before any work, rather than after three failed attempts (or three review rounds)."""
    if os.environ.get("ANTHROPIC_API_KEY"):
        return None
    claude = _callers(plan, routes, refs, backend="claude")
    if not claude:
        return None
    return (
        f"Claude specialists {', '.join(claude)} need ANTHROPIC_API_KEY, which is not set in "
        f"the environment of the worker on {socket.gethostname()}: set it where `coord "
        "worker` runs, or use command specialists (`reviewer: null` skips the review)"
    )


def _callers(
    plan: Plan,
    routes: dict[str, str],
    refs: dict[str, SpecialistRef],
    backend: str = "claude-code",
) -> list[str]:
    """ "name (who calls it)" for the specialists of `backend` this execution will call."""
    callers: dict[str, str] = {}
    for task_id, name in routes.items():
        callers.setdefault(name, f"task {task_id}")
    if plan.fixer:
        callers.setdefault(plan.fixer, "the plan's fixer")
    # (The built-in `fixer` of gate rounds is called only when a gate fails: a missing key
    # then fails that round, which escalates, rather than every run.)
    if plan.reviewer:
        callers.setdefault(plan.reviewer, "the reviewer")
    return [
        f"{name} ({who})"
        for name, who in callers.items()
        if (ref := refs.get(name)) is not None and ref.backend == backend
    ]
