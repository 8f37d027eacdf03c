"""Acting on executions: `coord cancel`, and the human answers (approve, reject, resolve)."""

from __future__ import annotations

import typer
from temporalio.client import WorkflowExecutionStatus

from cli.common import (
    AddressOption,
    ExecutionIdArgument,
    NamespaceOption,
    execution_handle,
    fail,
    run_async,
    settings_from,
)
from cli.exit_codes import ExitCode
from coordinator.settings import connect

_ENGINE_PENDING = (
    "not yet available: executions in this version stop after the setup phase, so there is "
    "no escalation or approval to answer"
)


def cancel_command(
    execution_id: str = ExecutionIdArgument,
    address: str | None = AddressOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Cancel an execution: it stops cleanly and its report says Cancelled."""

    async def cancel() -> ExitCode:
        client = await connect(settings_from(address, namespace))
        handle = await execution_handle(client, execution_id)
        status = (await handle.describe()).status
        if status != WorkflowExecutionStatus.RUNNING:
            name = status.name.lower() if status else "closed"
            fail(
                f"{execution_id} has already ended ({name}); nothing to cancel",
                ExitCode.NOT_COMPLETE,
            )
        await handle.cancel()
        typer.echo(
            f"cancellation requested for {execution_id}; 'coord watch {execution_id}' follows it"
        )
        return ExitCode.COMPLETE

    raise typer.Exit(int(run_async(cancel())))


def approve_command(
    execution_id: str = ExecutionIdArgument,
    address: str | None = AddressOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Approve a pending approval wait (arrives with the execution engine)."""
    fail(_ENGINE_PENDING, ExitCode.INVALID)


def reject_command(
    execution_id: str = ExecutionIdArgument,
    reason: str = typer.Option("", "--reason", help="Why, for the report."),
    address: str | None = AddressOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Reject a pending approval wait (arrives with the execution engine)."""
    fail(_ENGINE_PENDING, ExitCode.INVALID)


def resolve_command(
    execution_id: str = ExecutionIdArgument,
    escalation_id: str | None = typer.Argument(None, help="Escalation id (optional when one)."),
    address: str | None = AddressOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Answer an escalation: retry with guidance, skip, abort (arrives with the engine)."""
    fail(_ENGINE_PENDING, ExitCode.INVALID)
