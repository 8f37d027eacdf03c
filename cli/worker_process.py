"""`coord worker --detach` / `coord worker stop`: a worker process in the background, with the
same pid/log/stop machinery as `coord server` (cli.processes).

Typical use in the worker command:

    config = load_config(config_path)
    settings = resolve_client_settings(...)
    record = start_worker([sys.executable, "-m", "worker"], settings, config.worker.state_dir)
    ...
    stop_worker(config.worker.state_dir)

Pids, logs and locks live in `worker.state_dir` of temporal-dev.yaml (`worker.pid`,
`worker.log`); pass another `name` to run several workers side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from cli.processes import (
    AlreadyRunningError,
    ProcessError,
    ProcessRecord,
    read_pid,
    run_foreground,
    run_sync,
    start_detached,
    stop_detached,
)
from cli.temporal_client import connect
from coordinator.settings import ClientSettings

__all__ = [
    "WORKER_NAME",
    "AlreadyRunningError",
    "ProcessError",
    "ProcessRecord",
    "read_pid",
    "run_foreground",
    "running_worker",
    "start_detached",
    "start_worker",
    "stop_detached",
    "stop_worker",
    "worker_polls",
]

WORKER_NAME = "worker"


def start_worker(
    argv: list[str],
    settings: ClientSettings,
    state_dir: Path,
    *,
    name: str = WORKER_NAME,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ProcessRecord:
    """Start `argv` (a worker) detached and return once it polls `settings.task_queue`.
    Raises AlreadyRunningError when `name` already runs, ProcessError with the log's tail when
    it dies or never polls."""
    return start_detached(
        name,
        argv,
        state_dir,
        lambda pid: worker_polls(settings, pid),
        timeout=timeout,
        env=env,
        cwd=cwd,
        info={"task_queue": settings.task_queue, "address": settings.address},
    )


def stop_worker(state_dir: Path, *, name: str = WORKER_NAME, grace: float = 30.0) -> bool:
    """SIGTERM the worker (the SDK then finishes in-flight tasks), SIGKILL after `grace`
    seconds. False when none was running."""
    return stop_detached(name, state_dir, grace=grace)


def running_worker(state_dir: Path, *, name: str = WORKER_NAME) -> ProcessRecord | None:
    return read_pid(name, state_dir)


def worker_polls(settings: ClientSettings, pid: int) -> bool:
    """True once process `pid` polls the task queue. It relies on the SDK's default worker
    identity, `<pid>@<host>`: a worker that sets its own identity must keep that prefix."""

    async def probe() -> bool:
        try:
            client = await connect(settings, timeout=3.0)
            return await _polls(client, settings, f"{pid}@")
        except Exception:
            return False

    return run_sync(probe())


async def _polls(client: Client, settings: ClientSettings, identity_prefix: str) -> bool:
    for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=settings.namespace,
                task_queue=TaskQueue(
                    name=settings.task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL
                ),
                task_queue_type=kind,
            ),
            timeout=timedelta(seconds=3),
        )
        if any(p.identity.startswith(identity_prefix) for p in response.pollers):
            return True
    return False
