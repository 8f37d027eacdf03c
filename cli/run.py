"""`coord run PLAN`: validate a plan, start its execution, optionally follow it to the end."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from cli.common import (
    AddressOption,
    JsonOption,
    NamespaceOption,
    fail,
    has_worker,
    run_async,
    settings_from,
)
from cli.exit_codes import ExitCode
from cli.follow import finish, follow, report_handle
from coordinator.execution import (
    ExecutionInput,
    build_execution_input,
    execution_id_problem,
)
from coordinator.settings import connect, execution_ui_url
from coordinator.validation import format_problems, validate_plan_file
from workflows import search_attributes as sa
from workflows.execution import ExecutionWorkflow


def run_command(
    plan: Path = typer.Argument(
        ...,
        help="The plan file (YAML, JSON or a Markdown breakdown .md), or a folder holding "
        "plan.yaml (or breakdown.md) and context documents (goal.md, requirements.md, "
        "research.md, plan.md).",
    ),
    execution_id: str | None = typer.Option(
        None, "--id", help="Execution id (default: <plan name>-<random>)."
    ),
    repo: Path | None = typer.Option(None, "--repo", help="Run on this repository instead."),
    wait: bool = typer.Option(False, "--wait", help="Follow progress until the end."),
    json_output: bool = JsonOption,
    address: str | None = AddressOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Start an execution of PLAN; print its id and Web UI link.

    Exit codes: 0 Complete, 1 Partial/Blocked/Failed/Cancelled, 2 invalid plan or arguments,
    3 waiting on a human, 4 Temporal unreachable.
    """
    if execution_id is not None and (problem := execution_id_problem(execution_id)):
        fail(problem, ExitCode.INVALID)
    result = validate_plan_file(plan, repository_override=repo)
    if result.plan is None or result.errors:
        typer.echo(format_problems(result), err=True)
        raise typer.Exit(int(ExitCode.INVALID))
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    request = build_execution_input(
        result.plan,
        Path(result.plan_file or plan),  # a folder's plan file
        repository_override=repo,
        execution_id=execution_id,
    )
    raise typer.Exit(int(run_async(_start(request, wait, json_output, address, namespace))))


async def _start(
    request: ExecutionInput,
    wait: bool,
    json_output: bool,
    address: str | None,
    namespace: str | None,
) -> ExitCode:
    settings = settings_from(address, namespace)
    client = await connect(settings)
    try:
        await client.start_workflow(
            ExecutionWorkflow.run,
            request,
            id=request.execution_id,
            task_queue=settings.task_queue,
            # An execution id names one run for good: reports and branches refer to it.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.PLAN, request.plan.name),
                    SearchAttributePair(sa.STATUS, "running"),
                ]
            ),
            static_summary=f"plan {request.plan.name}: {len(request.plan.tasks)} tasks",
        )
    except WorkflowAlreadyStartedError:
        fail(f"an execution with id '{request.execution_id}' already exists", ExitCode.INVALID)
    ui_url = execution_ui_url(settings, request.execution_id)
    if not json_output:
        typer.echo(f"started execution {request.execution_id}")
        if ui_url:
            typer.echo(f"Web UI: {ui_url}")
    if not await has_worker(client, settings):
        typer.echo(
            f"warning: no worker polls task queue '{settings.task_queue}' yet; "
            "start one with 'coord worker' (the execution waits for it)",
            err=True,
        )
    if not wait:
        if json_output:
            typer.echo(json.dumps({"execution_id": request.execution_id, "ui_url": ui_url}))
        return ExitCode.COMPLETE
    handle = report_handle(client, request.execution_id)
    last = await follow(handle, ui_url, to_stderr=json_output)
    return await finish(handle, last, ui_url, json_output=json_output)
