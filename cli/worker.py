"""`coord worker`: run a worker in the foreground, or `--detach` it; `coord worker stop`."""

from __future__ import annotations

import logging
import re
import sys

import typer

from activities.process import hide_secrets_from_children
from cli.common import (
    AddressOption,
    NamespaceOption,
    config_file,
    fail,
    run_async,
    settings_from,
)
from cli.exit_codes import ExitCode
from cli.worker_process import AlreadyRunningError, ProcessError, start_worker, stop_worker

worker_app = typer.Typer(
    help="Run a worker: it executes the coordinator's workflows and activities.",
    invoke_without_command=True,
)

TaskQueueOption = typer.Option(
    None,
    "--task-queue",
    help="Task queue to poll (default: env COORD_TASK_QUEUE, else temporal-dev.yaml)",
)


HostIdOption = typer.Option(
    None,
    "--host-id",
    help="This worker's host id: it also polls '<task queue>@<host id>' (default: env "
    "COORD_HOST_ID, else temporal-dev.yaml, else the hostname and a hash of the workspace root)",
)


@worker_app.callback()
def worker(
    ctx: typer.Context,
    detach: bool = typer.Option(False, "--detach", help="Run in the background (pid + log file)."),
    task_queue: str | None = TaskQueueOption,
    host_id: str | None = HostIdOption,
    address: str | None = AddressOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Start a worker (foreground until Ctrl-C or SIGTERM, or --detach)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_from(address, namespace, task_queue)
    if host_id is not None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", host_id):
            fail(f"--host-id {host_id!r}: use 1-100 of A-Z a-z 0-9 _ . -", ExitCode.INVALID)
        settings = settings.model_copy(update={"host_id": host_id})
    if detach:
        state_dir = config_file().worker.state_dir
        argv = [sys.executable, "-m", "cli.main", "worker"]
        argv += ["--address", settings.address, "--namespace", settings.namespace]
        argv += ["--task-queue", settings.task_queue]
        if host_id is not None:
            argv += ["--host-id", host_id]
        try:
            record = start_worker(argv, settings, state_dir)
        except AlreadyRunningError as err:
            typer.echo(f"a worker is already running (pid {err.record.pid})")
            return
        except ProcessError as err:
            fail(str(err), ExitCode.NOT_COMPLETE)
        typer.echo(
            f"worker running (pid {record.pid}), polling '{settings.task_queue}' on "
            f"{settings.address}; log {state_dir / 'worker.log'}; stop with 'coord worker stop'"
        )
        return
    # Specialists must not find the worker's keys in /proc/<worker>/environ.
    hide_secrets_from_children(["-m", "cli.main", *sys.argv[1:]])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    forward_sdk_logs()
    # The worker imports every workflow and activity (and their SDKs): only it pays for them.
    from worker import run_worker

    run_async(run_worker(settings), sdk_logs=True)


def forward_sdk_logs() -> None:
    """The SDK's Rust core logs through Python's logging, formatted like every other line:
    written to the terminal by itself it would carry colour codes into `.coord/worker.log`."""
    from temporalio.runtime import (
        LogForwardingConfig,
        LoggingConfig,
        Runtime,
        TelemetryConfig,
        TelemetryFilter,
    )

    logging_config = LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
    )
    Runtime.set_default(
        Runtime(telemetry=TelemetryConfig(logging=logging_config)), error_if_already_set=False
    )


@worker_app.command("stop")
def stop() -> None:
    """Stop the worker started with --detach (in-flight activities get a grace period)."""
    # Longer than the worker's own graceful shutdown, so SIGKILL never cuts it short.
    from worker import GRACEFUL_SHUTDOWN

    grace = GRACEFUL_SHUTDOWN.total_seconds() + 10
    if stop_worker(config_file().worker.state_dir, grace=grace):
        typer.echo("worker stopped")
    else:
        typer.echo("no worker was running")
