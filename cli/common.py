"""What every `coord` command shares: connection options, exit codes, printing errors."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from enum import IntEnum
from typing import Any, NoReturn, TypeVar

import typer
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from coordinator.report import ExecutionStatus
from coordinator.settings import (
    ClientSettings,
    ConfigError,
    TemporalUnreachableError,
    connect,
    resolve_client_settings,
)


class ExitCode(IntEnum):
    """Stable exit codes: scripts and CI jobs branch on them."""

    COMPLETE = 0
    NOT_COMPLETE = 1  # partial, blocked, failed or cancelled
    INVALID = 2  # invalid plan or arguments
    WAITING_ON_HUMAN = 3  # an escalation or an approval is pending
    UNREACHABLE = 4  # Temporal could not be reached


def exit_code_for(status: ExecutionStatus) -> ExitCode:
    if status == ExecutionStatus.COMPLETED:
        return ExitCode.COMPLETE
    if status in (ExecutionStatus.ESCALATED, ExecutionStatus.AWAITING_APPROVAL):
        return ExitCode.WAITING_ON_HUMAN
    return ExitCode.NOT_COMPLETE


AddressOption = typer.Option(
    None, "--address", help="Temporal host:port [env TEMPORAL_ADDRESS, else temporal-dev.yaml]"
)
NamespaceOption = typer.Option(
    None, "--namespace", help="Temporal namespace [env TEMPORAL_NAMESPACE, else temporal-dev.yaml]"
)
JsonOption = typer.Option(False, "--json", help="Machine-readable JSON output.")

T = TypeVar("T")


def fail(message: str, code: ExitCode) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(int(code))


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; Temporal being unreachable is one line and exit 4, and a
    refusal from the server is one line too, not a traceback."""
    try:
        return asyncio.run(coro)
    except TemporalUnreachableError as err:
        fail(str(err), ExitCode.UNREACHABLE)
    except ConfigError as err:
        fail(str(err), ExitCode.INVALID)
    except RPCError as err:
        fail(f"Temporal refused the request: {err.message}", ExitCode.NOT_COMPLETE)
    finally:
        # Drop the SDK's Rust-side client before interpreter shutdown; otherwise exiting
        # aborts now and then (temporalio/sdk-python#300).
        gc.collect()


def settings_from(
    address: str | None, namespace: str | None, task_queue: str | None = None
) -> ClientSettings:
    return resolve_client_settings(address=address, namespace=namespace, task_queue=task_queue)


async def client_for(settings: ClientSettings) -> Client:
    return await connect(settings)


async def execution_handle(client: Client, execution_id: str) -> WorkflowHandle[Any, Any]:
    """A handle on an existing execution, or a clear 'no such execution' with exit 2."""
    handle = client.get_workflow_handle(execution_id)
    try:
        await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            fail(f"no execution with id '{execution_id}'", ExitCode.INVALID)
        raise
    return handle


async def has_worker(client: Client, settings: ClientSettings) -> bool:
    """Whether any worker polled the task queue recently: without one nothing will run."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=settings.namespace,
            task_queue=TaskQueue(name=settings.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len(response.pollers) > 0
