"""Following an execution until it ends or needs a human (`coord run --wait`, `coord watch`)."""

from __future__ import annotations

import asyncio
import sys

import typer
from rich.console import Console
from rich.live import Live
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import FailureError
from temporalio.service import RPCError

from cli.exit_codes import ExitCode, exit_code_for
from cli.render import progress_view
from coordinator.report import ExecutionReport, ExecutionStatus, Progress
from workflows.execution import ExecutionWorkflow

POLL_SECONDS = 0.5


def report_handle(
    client: Client, execution_id: str
) -> WorkflowHandle[ExecutionWorkflow, ExecutionReport]:
    return client.get_workflow_handle_for(ExecutionWorkflow.run, execution_id)


async def query_progress(
    handle: WorkflowHandle[ExecutionWorkflow, ExecutionReport],
) -> Progress | None:
    """The progress, or None while no worker can answer (a query needs one)."""
    try:
        return await handle.query(ExecutionWorkflow.progress)
    except RPCError:
        return None


async def is_closed(handle: WorkflowHandle[ExecutionWorkflow, ExecutionReport]) -> bool:
    return (await handle.describe()).status != WorkflowExecutionStatus.RUNNING


async def follow(
    handle: WorkflowHandle[ExecutionWorkflow, ExecutionReport],
    ui_url: str | None,
    *,
    to_stderr: bool = False,
) -> Progress | None:
    """Show progress until the execution closes or waits on a human; return the last progress.

    On a terminal the view is redrawn in place; otherwise one line per change (to stderr when
    stdout carries JSON).
    """
    console = Console()
    last: Progress | None = None
    if sys.stdout.isatty() and not to_stderr:
        with Live(console=console, auto_refresh=False) as live:
            while True:
                last = await query_progress(handle) or last
                if last:
                    live.update(progress_view(last, ui_url), refresh=True)
                if await _stop(handle, last):
                    return last
                await asyncio.sleep(POLL_SECONDS)
    seen: tuple[str, str, int] | None = None
    while True:
        last = await query_progress(handle) or last
        if last and (last.status.value, last.phase, last.percent) != seen:
            seen = (last.status.value, last.phase, last.percent)
            typer.echo(
                f"{last.execution_id}: {seen[0]}, phase {seen[1]}, {seen[2]}% of tasks done",
                err=to_stderr,
            )
        if await _stop(handle, last):
            return last
        await asyncio.sleep(POLL_SECONDS)


async def _stop(
    handle: WorkflowHandle[ExecutionWorkflow, ExecutionReport], last: Progress | None
) -> bool:
    waiting = last is not None and last.status in (
        ExecutionStatus.ESCALATED,
        ExecutionStatus.AWAITING_APPROVAL,
    )
    return waiting or await is_closed(handle)


async def finish(
    handle: WorkflowHandle[ExecutionWorkflow, ExecutionReport],
    last: Progress | None,
    ui_url: str | None,
    *,
    json_output: bool,
) -> ExitCode:
    """Print the report of a closed execution (or the question of a waiting one)."""
    if not await is_closed(handle):
        assert last is not None
        typer.echo(f"{last.execution_id} is waiting on a human: {last.status.value}")
        return exit_code_for(last.status)
    try:
        report = await handle.result()
    except WorkflowFailureError as err:
        # Terminated, timed out or crashed: there is no report, only Temporal's reason.
        cause = err.cause
        reason = cause.message if isinstance(cause, FailureError) else str(cause)
        typer.echo(f"error: {handle.id} ended without a report: {reason}", err=True)
        return ExitCode.NOT_COMPLETE
    if json_output:
        typer.echo(report.model_dump_json(indent=2))
    else:
        typer.echo(report.to_markdown(ui_url))
    # A closed execution waits on no one: it either completed or it did not.
    return ExitCode.COMPLETE if report.status == "Complete" else ExitCode.NOT_COMPLETE
