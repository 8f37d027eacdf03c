"""Where the steps run, and moving there again when a host is gone. Workflow code: no I/O.

Every step takes the execution's `Workspace` and runs where it is: on the host queue of the
worker that holds the clone (coordinator/hosts.py), or on the shared queue for workspaces
prepared before host queues. A step that no worker picks up within the workspace's grace
period means its host is gone: the execution re-homes (`rehome`), and the step runs again on
the new host. A step that needs a task worktree the lost host had raises `HostLost`, so its
caller starts that attempt again from the branch; a worktree nothing has worked in yet is made
again on the new host instead (workflows/steps.py).

After a move the requests' paths on the former host name the same places on the new one:
only the fields `PATH_FIELDS` lists are rewritten. The bookkeeping this needs (which worktree
is on which host, how to make the environment again) lives in the `Workspace` object the
phase passes in, never in module state: this module is shared by every workflow run."""

from __future__ import annotations

import posixpath
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from activities.environment import EnvironmentActivities
    from activities.workspace import WorkspaceActivities
    from coordinator.branches import (
        CommitRequest,
        CreateWorktreeRequest,
        DiffRequest,
        LandRequest,
        MergeRequest,
        PendingWorkRequest,
        PublishRequest,
        RemoveWorktreeRequest,
        TaskWorktree,
    )
    from coordinator.environment import CommandEnvironment
    from coordinator.execution import (
        PlanCheckInput,
        PrepareEnvironmentInput,
        PrepareWorkspaceInput,
        SetupCommandRequest,
        WorktreeSetupRequest,
    )
    from coordinator.handoff import PushRequest
    from coordinator.hosts import Placement, Recipe
    from coordinator.report import Workspace
    from coordinator.work import FollowThrough, GateRequest, SpecialistRequest
    from workflows.timeouts import GIT_TIMEOUT, HEARTBEAT, PREPARE_TIMEOUT, RETRY, SLACK, WAIT

T = TypeVar("T")
R = TypeVar("R", bound=BaseModel)

# A phase tells its execution where the workspace went (workflows/execution.py).
WORKSPACE_MOVED = "phase_workspace_moved"

# The fields of each request that name places on the workspace's host: a path, a list of
# paths, or a model of this table (its own paths). Nothing else is rewritten after a move.
PATH_FIELDS: dict[type[BaseModel], tuple[str, ...]] = {
    SpecialistRequest: (
        "cwd",
        "context_paths",
        "environment",
        "specialist_source",
        "worktree",
        "then",
    ),
    FollowThrough: ("merge",),
    GateRequest: ("cwd", "environment"),
    PlanCheckInput: ("workspace", "plan_dir"),
    CreateWorktreeRequest: ("workspace",),
    CommitRequest: ("worktree",),
    MergeRequest: ("workspace",),
    LandRequest: ("worktree", "merge"),
    PublishRequest: ("workspace",),
    RemoveWorktreeRequest: ("workspace",),
    PendingWorkRequest: ("workspace",),
    DiffRequest: ("workspace",),
    PushRequest: ("workspace",),
    PrepareEnvironmentInput: ("workspace", "plan_dir"),
    SetupCommandRequest: ("cwd", "environment"),
    WorktreeSetupRequest: ("worktree", "environment"),
    Recipe: ("plan_dir", "environment"),
    CommandEnvironment: ("env_dir", "env_from"),
}


class HostLost(ApplicationError):
    """A step needs a worktree (or task branch) that was on a worker that is gone. The
    execution has moved to another worker; the caller starts the interrupted attempt again
    there, from the branch. Uncaught, it fails the phase with this message."""

    def __init__(self, what: str, lost: str | None, ws: Workspace) -> None:
        super().__init__(
            f"{what}: needs work that stayed on {lost or 'the worker that was lost'}; the "
            f"execution moved to {ws.host_queue}, where the attempt starts again from the "
            "branch",
            type="HostLost",
            non_retryable=True,
        )


def grace(ws: Workspace) -> timedelta | None:
    """How long a step waits for its host; without a home to move from, for ever."""
    if ws.host_queue is None or ws.home is None or not ws.host_grace_s:
        return None
    return timedelta(seconds=ws.host_grace_s)


def _never_started(err: BaseException) -> bool:
    """Nobody picked the step up within the grace period (its first try or a retry after
    the worker died mid-step): the host queue has no live worker."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, TimeoutError) and cause.type == TimeoutType.SCHEDULE_TO_START:
            return True
        cause = cause.__cause__
    return False


def _exec_dir(path: str) -> str:
    """`<workspace root>/<execution id>`: the clone and the task worktrees live under it."""
    return posixpath.dirname(posixpath.normpath(path))


def rebound(ws: Workspace, path: str) -> str:
    """A path on a former host, as the same place on the current one."""
    here = _exec_dir(ws.path)
    for former in ws.former_dirs:
        if path == former or path.startswith(former + "/"):
            return here + path[len(former) :]
    return path


def rebind(ws: Workspace, request: R) -> R:
    """The request with its path fields (`PATH_FIELDS`) naming, for every path on a former
    host, the same place here."""
    if not ws.former_dirs:
        return request
    fields = PATH_FIELDS.get(type(request))
    if fields is None:
        raise TypeError(f"workflows/placement.py: PATH_FIELDS names no fields of {type(request)}")
    changed: dict[str, Any] = {}
    for name in fields:
        value = getattr(request, name)
        new = _rebind_path_field(ws, value)
        if new != value:
            changed[name] = new
    if isinstance(request, FollowThrough) and not request.moved:
        changed["moved"] = True  # it may have landed on a former host (activities/task_turn.py)
    return request.model_copy(update=changed) if changed else request


def _rebind_path_field(ws: Workspace, value: Any) -> Any:
    if isinstance(value, str):
        return rebound(ws, value)
    if isinstance(value, list):
        return [rebound(ws, path) for path in value]
    if isinstance(value, BaseModel):
        return rebind(ws, value)
    return value  # None: no path


async def on_host(
    ws: Workspace,
    method: Callable[..., Awaitable[T]],
    request: R,
    *,
    summary: str,
    worktree: str | None = None,
    **options: Any,
) -> tuple[T, R, str | None]:
    """Run the activity on the workspace's host; re-home when the host is gone and run it
    again there. `worktree` names the request field holding the task worktree the step works
    in: on another host than the current one it cannot run here (HostLost). Returns the
    result, the request as it ran and the queue it ran on."""
    while True:
        if ws.moving:
            await workflow.wait_condition(lambda: not ws.moving)
        request = rebind(ws, request)
        queue = ws.host_queue
        if worktree is not None:
            placed = ws.worktrees.get(getattr(request, worktree))
            if placed is not None and placed.host_queue != queue:
                raise HostLost(summary, placed.host_queue, ws)
        try:
            result: T = await workflow.execute_activity_method(
                method,
                request,
                task_queue=queue,
                schedule_to_start_timeout=grace(ws),
                summary=summary,
                **options,
            )
            return result, request, queue
        except ActivityError as err:
            if queue is None or ws.home is None or not _never_started(err):
                raise
            workflow.logger.warning("no worker on %s picked up %r: re-homing", queue, summary)
        await rehome(ws, lost=queue)


async def prepare_workspace(request: PrepareWorkspaceInput, *, summary: str) -> Workspace:
    """The clone and the execution branch, on any worker (its host queue is in the result):
    the first time (workflows/steps.py) and again when re-homing."""
    workspace: Workspace = await workflow.execute_activity_method(
        WorkspaceActivities.prepare_workspace,
        request,
        start_to_close_timeout=PREPARE_TIMEOUT,
        heartbeat_timeout=HEARTBEAT,
        retry_policy=RETRY,
        summary=summary,
    )
    return workspace


async def rehome(ws: Workspace, *, lost: str) -> None:
    """Move the execution off a host queue nobody serves: any worker (the shared queue)
    clones the repository again and takes the branch from its home, with every task merged so
    far. One move at a time: steps that noticed the same loss wait for it."""
    if ws.moving:
        await workflow.wait_condition(lambda: not ws.moving)
        return
    if ws.host_queue != lost:
        return  # another step moved it already
    ws.moving = True
    try:
        moved = await prepare_workspace(
            PrepareWorkspaceInput(
                execution_id=ws.execution_id,
                repository=ws.repository,
                base_branch=ws.base_branch,
                branch=ws.branch,
                home=ws.home,
                resume_head=ws.base_commit,
            ),
            summary=f"re-home: {lost} is gone; the workspace again from {ws.home}"[:200],
        )
        if _exec_dir(moved.path) != _exec_dir(ws.path):
            ws.former_dirs.append(_exec_dir(ws.path))
        ws.path, ws.host_queue, ws.head_commit = moved.path, moved.host_queue, moved.head_commit
        # Keyed as the steps name them from now on; the placements still say the old host.
        ws.worktrees = {rebound(ws, path): placed for path, placed in ws.worktrees.items()}
        ws.moves += 1
        await _environment_again(ws)
    finally:
        ws.moving = False
    parent = workflow.info().parent
    if parent is not None:  # the execution keeps its own copy for the phases after this one
        await workflow.get_external_workflow_handle(parent.workflow_id).signal(WORKSPACE_MOVED, ws)


async def _environment_again(ws: Workspace) -> None:
    """The prepared environment and the setup commands that passed, again on the new host
    (its paths are the old ones rebound). Steps waiting for the move wait for this too."""
    if ws.recipe is None:
        return
    recipe = rebind(ws, ws.recipe)
    options: dict[str, Any] = {
        "task_queue": ws.host_queue,
        "schedule_to_start_timeout": grace(ws),
        "heartbeat_timeout": HEARTBEAT,
        "retry_policy": RETRY,
    }
    if recipe.prepared:
        await workflow.execute_activity_method(
            EnvironmentActivities.prepare_environment,
            PrepareEnvironmentInput(
                execution_id=ws.execution_id,
                workspace=ws.path,
                plan_dir=recipe.plan_dir,
                context=recipe.context,
                make_env_dir=recipe.make_env_dir,
                status_file=recipe.status_file,
            ),
            start_to_close_timeout=GIT_TIMEOUT,
            summary="re-home: the environment again",
            **options,
        )
    for command in recipe.setup:
        await workflow.execute_activity_method(
            EnvironmentActivities.run_setup_command,
            SetupCommandRequest(
                execution_id=ws.execution_id,
                command=command,
                cwd=ws.path,
                environment=recipe.environment,
            ),
            start_to_close_timeout=timedelta(seconds=command.timeout) + SLACK,
            cancellation_type=WAIT,
            summary=f"re-home: setup {command.name}: {command.run}"[:200],
            **options,
        )


# --- the bookkeeping: which worktree is where, and how to make the environment again ---------


def place_worktree(
    ws: Workspace, worktree: TaskWorktree, request: CreateWorktreeRequest, queue: str | None
) -> None:
    """A worktree was made on `queue`. A fresh one (or a first attempt's) holds nothing yet:
    it can be made anew elsewhere. A later attempt builds on the earlier ones' work: when that
    stayed on a lost host, HostLost."""
    if ws.host_queue is None:
        return
    fresh = request.fresh or request.attempt == 1
    before = placed_on(ws, worktree.branch)
    if not fresh and before is not None and before.host_queue != queue:
        raise HostLost(f"worktree for {request.task_id}", before.host_queue, ws)
    forget_worktree(ws, worktree.branch)
    ws.worktrees[worktree.path] = Placement(
        host_queue=queue, branch=worktree.branch, pristine=request if fresh else None
    )


def placed_on(ws: Workspace, branch: str) -> Placement | None:
    return next((w for w in ws.worktrees.values() if w.branch == branch), None)


def forget_worktree(ws: Workspace, branch: str) -> None:
    ws.worktrees = {p: w for p, w in ws.worktrees.items() if w.branch != branch}


def worked_in(ws: Workspace, path: str) -> None:
    """A specialist worked in the worktree: its work is only on this host now."""
    if (placed := ws.worktrees.get(path)) is not None:
        placed.pristine = None


def pristine(ws: Workspace, path: str) -> CreateWorktreeRequest | None:
    """How to make the worktree again, while nothing has worked in it yet."""
    placed = ws.worktrees.get(rebound(ws, path))
    return None if placed is None else placed.pristine


def remember_environment(ws: Workspace, request: PrepareEnvironmentInput) -> None:
    if ws.host_queue is not None:
        ws.recipe = _recipe(ws).model_copy(
            update={
                "prepared": True,
                "plan_dir": request.plan_dir,
                "context": request.context,
                "make_env_dir": request.make_env_dir,
                "status_file": request.status_file,
            }
        )


def remember_setup(ws: Workspace, request: SetupCommandRequest) -> None:
    """A setup command of the clone passed: made again after a move (one a human skipped
    never passed, so it is not here)."""
    if ws.host_queue is not None and request.cwd == ws.path:
        recipe = _recipe(ws)
        command = request.command
        setup = [c for c in recipe.setup if c.name != command.name] + [command]
        ws.recipe = recipe.model_copy(update={"setup": setup, "environment": request.environment})


def remember_worktree_setup(ws: Workspace, request: WorktreeSetupRequest) -> None:
    if ws.host_queue is not None:
        ws.recipe = _recipe(ws).model_copy(
            update={"worktree_setup": request.commands, "environment": request.environment}
        )


def _recipe(ws: Workspace) -> Recipe:
    return ws.recipe or Recipe()
