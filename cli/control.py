"""Acting on executions: `coord cancel`, and the human answers (approve, reject, resolve)."""

from __future__ import annotations

import typer

from cli.common import (
    AddressOption,
    ExitCode,
    NamespaceOption,
    client_for,
    execution_handle,
    fail,
    run_async,
    settings_from,
)

ExecutionId = typer.Argument(..., help="The execution id (printed by `coord run`).")

_ENGINE_PENDING = (
    "not yet available: executions in this version stop after the setup phase, so there is "
    "no escalation or approval to answer"
)


def cancel_command(
    execution_id: str = ExecutionId,
    address: str | None = AddressOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Cancel an execution: it stops cleanly and its report says Cancelled."""

    async def cancel() -> ExitCode:
        client = await client_for(settings_from(address, namespace))
        handle = await execution_handle(client, execution_id)
        await handle.cancel()
        typer.echo(f"cancellation requested for {execution_id}")
        return ExitCode.COMPLETE

    raise typer.Exit(int(run_async(cancel())))


def approve_command(execution_id: str = ExecutionId) -> None:
    """Approve a pending approval wait (arrives with the execution engine)."""
    fail(_ENGINE_PENDING, ExitCode.INVALID)


def reject_command(
    execution_id: str = ExecutionId,
    reason: str = typer.Option("", "--reason", help="Why, for the report."),
) -> None:
    """Reject a pending approval wait (arrives with the execution engine)."""
    fail(_ENGINE_PENDING, ExitCode.INVALID)


def resolve_command(
    execution_id: str = ExecutionId,
    escalation_id: str | None = typer.Argument(None, help="Escalation id (optional when one)."),
) -> None:
    """Answer an escalation: retry with guidance, skip, abort (arrives with the engine)."""
    fail(_ENGINE_PENDING, ExitCode.INVALID)
