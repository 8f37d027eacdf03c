"""Looking at executions: `coord status`, `watch`, `list`, `report`."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from temporalio.client import WorkflowExecutionStatus

from cli.common import (
    AddressOption,
    ExecutionIdArgument,
    JsonOption,
    NamespaceOption,
    execution_handle,
    fail,
    run_async,
    settings_from,
)
from cli.exit_codes import ExitCode
from cli.follow import finish, follow, is_closed, is_waiting, query_progress, report_handle
from cli.render import progress_view, waiting_text
from coordinator.report import ExecutionStatus
from coordinator.settings import connect, execution_ui_url
from workflows import search_attributes as sa


def status_command(
    execution_id: str = ExecutionIdArgument,
    json_output: bool = JsonOption,
    address: str | None = AddressOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Show an execution's phases and tasks."""

    async def show() -> ExitCode:
        settings = settings_from(address, namespace)
        client = await connect(settings)
        await execution_handle(client, execution_id)
        progress = await query_progress(report_handle(client, execution_id))
        if progress is None:
            fail(
                f"no worker answered for {execution_id}; is 'coord worker' running?",
                ExitCode.NOT_COMPLETE,
            )
        if json_output:
            typer.echo(progress.model_dump_json(indent=2))
        else:
            Console().print(progress_view(progress, execution_ui_url(settings, execution_id)))
            if progress.pending_escalations or progress.pending_approval:
                # Plain text, unwrapped: the commands that answer are copied from here.
                typer.echo("\n" + waiting_text(progress))
        return ExitCode.COMPLETE

    raise typer.Exit(int(run_async(show())))


def watch_command(
    execution_id: str = ExecutionIdArgument,
    address: str | None = AddressOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Follow an execution live until it ends or needs a human."""

    async def watch() -> ExitCode:
        settings = settings_from(address, namespace)
        client = await connect(settings)
        await execution_handle(client, execution_id)
        handle = report_handle(client, execution_id)
        ui_url = execution_ui_url(settings, execution_id)
        last = await follow(handle, ui_url)
        return await finish(handle, last, ui_url, json_output=False)

    raise typer.Exit(int(run_async(watch())))


def report_command(
    execution_id: str = ExecutionIdArgument,
    json_output: bool = JsonOption,
    address: str | None = AddressOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Print the final report of a finished execution (Markdown, or --json)."""

    async def report() -> ExitCode:
        settings = settings_from(address, namespace)
        client = await connect(settings)
        await execution_handle(client, execution_id)
        handle = report_handle(client, execution_id)
        if not await is_closed(handle):
            if is_waiting(progress := await query_progress(handle)):
                # No report yet: what it waits for and the commands that answer (exit 3).
                return await finish(
                    handle,
                    progress,
                    execution_ui_url(settings, execution_id),
                    json_output=json_output,
                )
            fail(
                f"{execution_id} is still running; 'coord status {execution_id}' shows where",
                ExitCode.NOT_COMPLETE,
            )
        return await finish(
            handle, None, execution_ui_url(settings, execution_id), json_output=json_output
        )

    raise typer.Exit(int(run_async(report())))


def list_command(
    status: ExecutionStatus | None = typer.Option(
        None, "--status", help="Only executions in this status (e.g. escalated)."
    ),
    plan: str | None = typer.Option(None, "--plan", help="Only executions of this plan."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many, newest first."),
    json_output: bool = JsonOption,
    address: str | None = AddressOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """List executions, newest first, filtered by the coordinator's search attributes."""
    clauses = ["WorkflowType = 'ExecutionWorkflow'"]
    if status is not None:
        clauses.append(f"{sa.STATUS.name} = {_quoted(status.value)}")
    if plan is not None:
        clauses.append(f"{sa.PLAN.name} = {_quoted(plan)}")
    query = " AND ".join(clauses)

    async def listing() -> ExitCode:
        client = await connect(settings_from(address, namespace))
        rows = []
        async for wf in client.list_workflows(query, limit=limit):
            attrs = wf.typed_search_attributes
            rows.append(
                {
                    "execution_id": wf.id,
                    "plan": attrs.get(sa.PLAN),
                    "status": attrs.get(sa.STATUS)
                    or (wf.status.name.lower() if wf.status else None),
                    "phase": attrs.get(sa.PHASE),
                    "progress": attrs.get(sa.PROGRESS),
                    "started": wf.start_time.isoformat(),
                    "closed": wf.status != WorkflowExecutionStatus.RUNNING,
                }
            )
        if json_output:
            typer.echo(json.dumps(rows, indent=2))
            return ExitCode.COMPLETE
        for line in listing_lines(rows):
            typer.echo(line)
        return ExitCode.COMPLETE

    raise typer.Exit(int(run_async(listing())))


def listing_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The executions as aligned plain text: every value whole at any terminal width (ids are
    copied into the next command), no colour codes in a pipe."""
    header = ("execution", "plan", "status", "phase", "passed", "started")
    cells = [header] + [
        (
            str(row["execution_id"]),
            str(row["plan"] or "-"),
            str(row["status"] or "-"),
            str(row["phase"] or "-"),
            f"{row['progress']}%" if row["progress"] is not None else "-",
            str(row["started"])[:16].replace("T", " "),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    return [
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in cells
    ]


def _quoted(value: str) -> str:
    """A string literal for Temporal's visibility query language."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
