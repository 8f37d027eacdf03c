"""The coordinator's worker: every workflow and activity, on the shared task queue and on its
own host queue (coordinator/hosts.py).

Run it with `python worker.py` or `coord worker`. It stops cleanly on SIGINT/SIGTERM: it stops
polling, lets running activities finish within a grace period, and hands back the rest.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from temporalio import activity, workflow
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.child_watcher import watch_children_with_pidfds
from activities.claude.agent import ClaudeSpecialistActivities
from activities.claude_code.activity import ClaudeCodeActivities
from activities.command_specialist import CommandSpecialistActivities
from activities.environment import EnvironmentActivities, write_status_file
from activities.gates import GateActivities
from activities.github_comments import GithubCommentActivities
from activities.home import publish_branch
from activities.jail import Jail, configure, worker_jail
from activities.notify import NotifyActivities
from activities.plan_check import check_plan
from activities.process_env import hide_secrets_from_children
from activities.workspace import WorkspaceActivities
from activities.worktrees import WorktreeActivities
from cli.temporal_client import TemporalUnreachableError, connect, resolve_client_settings
from coordinator.claude import ClaudeSettings
from coordinator.environment import WorkerConfine
from coordinator.hosts import DEFAULT_HOST_GRACE_S, HostSettings, default_host_id, host_queue
from coordinator.settings import ClientSettings, ConfigError
from workflows import search_attributes as sa
from workflows.execution import ExecutionWorkflow
from workflows.implementation_phase import ImplementationPhaseWorkflow
from workflows.integration_phase import IntegrationPhaseWorkflow
from workflows.review_phase import ReviewPhaseWorkflow
from workflows.setup_phase import SetupPhaseWorkflow
from workflows.validation_phase import ValidationPhaseWorkflow

log = logging.getLogger("coord.worker")

WORKFLOWS: list[type] = [
    ExecutionWorkflow,
    SetupPhaseWorkflow,
    ImplementationPhaseWorkflow,
    ValidationPhaseWorkflow,
    IntegrationPhaseWorkflow,
    ReviewPhaseWorkflow,
]
GRACEFUL_SHUTDOWN = timedelta(seconds=30)
HEARTBEAT_THROTTLE = timedelta(seconds=2)


def activities(
    workspace_root: Path,
    artifacts_root: Path,
    claude: ClaudeSettings | None = None,
    host: HostSettings | None = None,
) -> list[Any]:
    workspace = WorkspaceActivities(workspace_root, host)
    worktrees = WorktreeActivities(workspace_root)
    github = GithubCommentActivities()  # GITHUB_TOKEN and GITHUB_API_URL: read when a step runs
    environment = EnvironmentActivities(workspace_root, artifacts_root)
    return [
        check_plan,
        workspace.prepare_workspace,
        GateActivities(artifacts_root).run_gate,
        CommandSpecialistActivities(artifacts_root, worktrees).run,
        ClaudeSpecialistActivities(artifacts_root, claude, worktrees).run,
        ClaudeCodeActivities(artifacts_root, claude, worktrees).run,
        worktrees.create_task_worktree,
        worktrees.commit_task,
        worktrees.merge_task,
        worktrees.land_task,
        worktrees.remove_task_worktree,
        worktrees.commit_pending_work,
        worktrees.diff_from_base,
        github.access,
        github.push,
        github.pull_request,
        github.tick_issue,
        github.status_comment,
        github.review,
        github.read_commands,
        github.reply,
        NotifyActivities().webhook,
        environment.prepare_environment,
        environment.run_setup_command,
        environment.setup_worktree,
        write_status_file,  # a local activity
        publish_branch,
    ]


class CoordWorker:
    """Two Temporal workers in one process: the shared queue (workflows, and every activity,
    `prepare_workspace` above all) and this host's queue (the steps of the executions whose
    workspace is here). Used as `async with`."""

    def __init__(self, shared: Worker, host: Worker, host_queue: str) -> None:
        self.shared = shared
        self.host = host
        self.host_queue = host_queue
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> CoordWorker:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self.host)
            await stack.enter_async_context(self.shared)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)


def build_worker(
    client: Client,
    *,
    task_queue: str,
    workspace_root: Path,
    artifacts_root: Path,
    claude: ClaudeSettings | None = None,
    replace_activities: Sequence[Any] = (),
    host_id: str | None = None,
    shared_root: Path | None = None,
    host_grace_s: float = DEFAULT_HOST_GRACE_S,
    publish_to_remote: bool = True,
    replace_workflows: Sequence[type] = (),
    confine: WorkerConfine | None = None,
) -> CoordWorker:
    """The worker; `replace_activities` swaps in stand-ins by activity name and
    `replace_workflows` other versions of workflows by workflow name (tests). Without
    `host_id` it is derived from the hostname and the workspace root; without `shared_root`
    branches are published beside the workspaces. `confine` is the jail setting of this
    process (None: COORD_CONFINE, else auto); the worker says once which jail it has."""
    announce_jail(configure(confine) if confine is not None else worker_jail())
    root = workspace_root.expanduser().resolve()
    host_id = host_id or default_host_id(root, socket.gethostname())
    host = HostSettings(
        host_queue=host_queue(task_queue, host_id),
        shared_root=shared_root or workspace_root.parent / "shared",
        grace_s=host_grace_s,
        publish_to_remote=publish_to_remote,
    )
    acts = activities(workspace_root, artifacts_root, claude, host)
    if replace_activities:
        names = {_activity_name(a) for a in replace_activities}
        acts = [a for a in acts if _activity_name(a) not in names] + list(replace_activities)
    options: dict[str, Any] = {
        "activities": acts,
        "graceful_shutdown_timeout": GRACEFUL_SHUTDOWN,
        # Cancellation reaches an activity with its next heartbeat sent to the server: keep
        # that within seconds (the SDK's default throttle is up to 60 s).
        "max_heartbeat_throttle_interval": HEARTBEAT_THROTTLE,
        "default_heartbeat_throttle_interval": HEARTBEAT_THROTTLE,
    }
    return CoordWorker(
        shared=Worker(
            client,
            task_queue=task_queue,
            workflows=_replaced(WORKFLOWS, replace_workflows),
            **options,
        ),
        host=Worker(client, task_queue=host.host_queue, **options),
        host_queue=host.host_queue,
    )


def announce_jail(jail: Jail) -> None:
    if jail.isolates_network:
        log.info("%s", jail.describe())
    else:
        log.warning("%s", jail.describe())


def _replaced(workflows: Sequence[type], replacements: Sequence[type]) -> list[type]:
    names = {_workflow_name(w) for w in replacements}
    return [w for w in workflows if _workflow_name(w) not in names] + list(replacements)


def _workflow_name(cls: type) -> str:
    name = workflow._Definition.must_from_class(cls).name
    assert name is not None, cls
    return name


def _activity_name(fn: Any) -> str:
    name = activity._Definition.must_from_callable(fn).name
    assert name is not None, fn
    return name


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register the search attributes executions upsert, or say how to.

    Upserting an unregistered attribute fails every workflow task of an execution, which
    would then hang, so a worker refuses to start without them.
    """
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type)
        for key in sa.ALL
        if key.name not in existing.custom_attributes
    }
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    except RPCError as err:
        names = ", ".join(missing)
        raise ConfigError(
            f"search attributes {names} are not registered in namespace {namespace} and "
            f"could not be registered ({err.message}); see docs/configuration.md"
        ) from err
    log.info("registered search attributes %s in namespace %s", ", ".join(missing), namespace)


async def run_worker(settings: ClientSettings) -> None:
    """Run until SIGINT or SIGTERM."""
    client = await connect(settings)
    await ensure_search_attributes(client, settings.namespace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    watch_children_with_pidfds(loop)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    settings.workspace_root.mkdir(parents=True, exist_ok=True)
    async with build_worker(
        client,
        task_queue=settings.task_queue,
        workspace_root=settings.workspace_root,
        artifacts_root=settings.artifacts_root,
        claude=settings.claude,
        host_id=settings.host_id,
        shared_root=settings.shared_root,
        host_grace_s=settings.host_grace_s,
        publish_to_remote=settings.publish_to_remote,
        confine=settings.confine,
    ) as worker:
        log.info(
            "worker connected to %s (namespace %s), polling task queues %r and %r, workspaces "
            "in %s, branches published to %s",
            settings.address,
            settings.namespace,
            settings.task_queue,
            worker.host_queue,
            settings.workspace_root,
            settings.shared_root,
        )
        await stop.wait()
        log.info("stopping: finishing in-flight activities (up to %s)", GRACEFUL_SHUTDOWN)
    log.info("worker stopped")


def main() -> None:
    hide_secrets_from_children(["-m", "worker", *sys.argv[1:]])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        asyncio.run(run_worker(resolve_client_settings()))
    except (TemporalUnreachableError, ConfigError) as err:
        raise SystemExit(str(err)) from None
    except RPCError as err:  # e.g. a namespace that does not exist
        raise SystemExit(f"Temporal refused the worker: {err.message}") from None
    finally:
        gc.collect()  # see cli.common.run_async


if __name__ == "__main__":
    main()
