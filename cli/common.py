"""What every `coord` command shares: connection options, exit codes, printing errors."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import typer
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode

from cli.exit_codes import ExitCode
from coordinator.settings import (
    ClientSettings,
    ConfigError,
    DevServerConfig,
    TemporalUnreachableError,
    load_config,
    resolve_client_settings,
)

AddressOption = typer.Option(
    None,
    "--address",
    help="Temporal host:port (default: env TEMPORAL_ADDRESS, else temporal-dev.yaml)",
)
NamespaceOption = typer.Option(
    None,
    "--namespace",
    help="Temporal namespace (default: env TEMPORAL_NAMESPACE, else temporal-dev.yaml)",
)
JsonOption = typer.Option(False, "--json", help="Machine-readable JSON output.")
ExecutionIdArgument = typer.Argument(..., help="The execution id (printed by `coord run`).")

T = TypeVar("T")


def fail(message: str, code: ExitCode) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(int(code))


# The server went away (or stopped answering) in the middle of a command.
SERVER_LOST = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)


def server_lost(err: RPCError) -> bool:
    return err.status in SERVER_LOST


def quiet_sdk_logs() -> None:
    """The SDK's Rust core prints its own warnings (retries against a vanished server) on the
    terminal, with colour codes; a command says what went wrong in one line of its own."""
    Runtime.set_default(
        Runtime(telemetry=TelemetryConfig(logging=None)), error_if_already_set=False
    )


def run_async(coro: Coroutine[Any, Any, T], *, sdk_logs: bool = False) -> T:
    """Run a command's coroutine; Temporal being unreachable (or lost on the way) is one line
    and exit 4, and a refusal from the server is one line too, not a traceback."""
    if not sdk_logs:
        quiet_sdk_logs()
    try:
        return asyncio.run(coro)
    except TemporalUnreachableError as err:
        fail(str(err), ExitCode.UNREACHABLE)
    except ConfigError as err:
        fail(str(err), ExitCode.INVALID)
    except RPCError as err:
        if server_lost(err):
            fail(f"lost the Temporal server: {err.message}", ExitCode.UNREACHABLE)
        fail(f"Temporal refused the request: {err.message}", ExitCode.NOT_COMPLETE)
    finally:
        # Drop the SDK's Rust-side client before interpreter shutdown; otherwise exiting
        # aborts now and then (temporalio/sdk-python#300).
        gc.collect()


def settings_from(
    address: str | None, namespace: str | None, task_queue: str | None = None
) -> ClientSettings:
    """Client settings from flags, environment and temporal-dev.yaml; a bad setting is one
    line and exit 2."""
    try:
        return resolve_client_settings(address=address, namespace=namespace, task_queue=task_queue)
    except ConfigError as err:
        fail(str(err), ExitCode.INVALID)


def config_file() -> DevServerConfig:
    """temporal-dev.yaml, or one line and exit 2 when it is broken."""
    try:
        return load_config()
    except ConfigError as err:
        fail(str(err), ExitCode.INVALID)


async def execution_handle(client: Client, execution_id: str) -> WorkflowHandle[Any, Any]:
    """A handle on an existing execution, or a clear 'no such execution' with exit 2."""
    handle = client.get_workflow_handle(execution_id)
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            fail(f"no execution with id '{execution_id}'", ExitCode.INVALID)
        raise
    if description.workflow_type != "ExecutionWorkflow":
        # e.g. a phase's id (`<id>/setup`) copied from the Web UI.
        fail(
            f"'{execution_id}' is a {description.workflow_type} workflow, not an execution; "
            f"use the execution's id (before any '/')",
            ExitCode.INVALID,
        )
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
