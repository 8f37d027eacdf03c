"""Following an execution until it ends or needs a human (`coord run --wait`, `coord watch`)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import typer
from rich.console import Console
from rich.live import Live
from rich.text import Text
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.exceptions import FailureError
from temporalio.service import RPCError

from cli.common import server_lost
from cli.exit_codes import ExitCode, exit_code_for
from cli.render import progress_view, waiting_text
from coordinator.outcome import settled_phases, settled_tasks
from coordinator.report import ExecutionReport, ExecutionStatus, Progress

POLL_SECONDS = 0.5
QUERY_TIMEOUT_S = 2.0  # a query waits for a worker: the view is redrawn meanwhile

# The execution's workflow is addressed by name (its query `progress`, its result an
# ExecutionReport), so the CLI does not need the workflow class to look at one.
ExecutionHandle = WorkflowHandle[Any, ExecutionReport]


def report_handle(client: Client, execution_id: str) -> ExecutionHandle:
    handle: ExecutionHandle = client.get_workflow_handle(execution_id, result_type=ExecutionReport)
    return handle


async def query_progress(
    handle: WorkflowHandle[Any, Any], *, timeout: float | None = None
) -> Progress | None:
    """The progress, or None while no worker can answer (a query needs one; `timeout`
    seconds bound the wait for one) or the workflow cannot (its code fails on the worker; the
    worker's log says why). Losing the server is not one of these: it raises RPCError.

    A finished execution's progress is settled as its report is: phases and tasks that did
    not run say so (coordinator/outcome.py)."""
    try:
        progress = await asyncio.wait_for(handle.query("progress", result_type=Progress), timeout)
    except TimeoutError:
        return None
    except RPCError as err:
        if server_lost(err):
            raise
        return None
    except WorkflowQueryFailedError:
        return None
    assert isinstance(progress, Progress)
    if progress.status.finished:
        progress.phases = settled_phases(progress)
        progress.tasks = settled_tasks(progress)
    return progress


def is_waiting(progress: Progress | None) -> bool:
    return progress is not None and progress.status in (
        ExecutionStatus.ESCALATED,
        ExecutionStatus.AWAITING_APPROVAL,
    )


async def is_closed(handle: WorkflowHandle[Any, Any]) -> bool:
    return (await handle.describe()).status != WorkflowExecutionStatus.RUNNING


async def follow(
    handle: ExecutionHandle,
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
        # Something on the screen at once, and again every poll (elapsed times move on).
        waiting = Text(f"{handle.id}: asking the execution for its progress ...")
        with Live(waiting, console=console, auto_refresh=False) as live:
            live.refresh()
            while True:
                last = await query_progress(handle, timeout=QUERY_TIMEOUT_S) or last
                if last:
                    live.update(progress_view(last, ui_url), refresh=True)
                else:
                    live.update(Text(f"{handle.id}: no worker answers yet ..."), refresh=True)
                if await _stop(handle, last):
                    return last
                await asyncio.sleep(POLL_SECONDS)
    seen: tuple[str, str, int] | None = None
    while True:
        last = await query_progress(handle, timeout=QUERY_TIMEOUT_S) or last
        if last and (last.status.value, last.phase, last.passed) != seen:
            seen = (last.status.value, last.phase, last.passed)
            typer.echo(
                f"{last.execution_id}: {seen[0]}, phase {seen[1]}, "
                f"{seen[2]} of {len(last.tasks)} tasks passed",
                err=to_stderr,
            )
        if await _stop(handle, last):
            return last
        await asyncio.sleep(POLL_SECONDS)


async def _stop(handle: ExecutionHandle, last: Progress | None) -> bool:
    return is_waiting(last) or await is_closed(handle)


async def finish(
    handle: ExecutionHandle,
    last: Progress | None,
    ui_url: str | None,
    *,
    json_output: bool,
) -> ExitCode:
    """Print the report of a closed execution, or the question of a waiting one with the
    commands that answer it (exit 3)."""
    if not await is_closed(handle):
        # The freshest view of what is asked; the last one seen if no worker answers now.
        progress = await query_progress(handle)
        if not is_waiting(progress):
            progress = last
        if progress is None:
            typer.echo(
                f"error: no worker answered for {handle.id}; is 'coord worker' running?", err=True
            )
            return ExitCode.NOT_COMPLETE
        if json_output:
            typer.echo(progress.model_dump_json(indent=2))
        else:
            typer.echo(waiting_text(progress))
            if ui_url:
                typer.echo(f"\nWeb UI: {ui_url}")
        return exit_code_for(progress.status)
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
