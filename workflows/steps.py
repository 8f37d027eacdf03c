"""The activity calls every phase makes, with the product's retry rule, timeouts, heartbeats
and summaries that make the Temporal UI read like the plan. Workflow code: no I/O here.

Every step takes the execution's `Workspace` and runs where it is: on the host queue of the
worker that holds the clone (coordinator/hosts.py), or on the shared queue for workspaces
prepared before host queues. A step that no worker picks up within the workspace's grace
period means its host is gone: the execution re-homes (`rehome`), and the step runs again on
the new host. A step that needs a task worktree the lost host had raises `HostLost`, so its
caller starts that attempt again from the branch; a worktree nothing has worked in yet is made
again on the new host instead, transparently.

The bookkeeping this needs (which worktree is on which host) lives in the `Workspace` object
the phase passes in, never in module state: this module is shared by every workflow run."""

from __future__ import annotations

import posixpath
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from activities.claude.agent import ClaudeSpecialistActivities
    from activities.claude_code.activity import ClaudeCodeActivities
    from activities.command_specialist import CommandSpecialistActivities
    from activities.environment import EnvironmentActivities, write_status_file
    from activities.gates import GateActivities
    from activities.github import GithubActivities
    from activities.home import COMMIT_MISSING, publish_branch
    from activities.notify import NotifyActivities
    from activities.plan_check import check_plan as check_plan_activity
    from activities.workspace import WorkspaceActivities
    from activities.worktrees import TASK_BRANCH_MISSING, WorktreeActivities
    from coordinator.branches import (
        CommitRequest,
        CommitResult,
        CreateWorktreeRequest,
        DiffRequest,
        DiffSummary,
        MergeRequest,
        MergeResult,
        PendingWorkRequest,
        PendingWorkResult,
        PublishRequest,
        RemoveWorktreeRequest,
        TaskWorktree,
        task_branch,
    )
    from coordinator.environment import CommandEnvironment
    from coordinator.execution import (
        PlanCheck,
        PlanCheckInput,
        PreparedEnvironment,
        PrepareEnvironmentInput,
        PrepareWorkspaceInput,
        SetupCommandRequest,
        SetupCommandResult,
        SpecialistRef,
        StatusFileRequest,
        WorktreeSetupRequest,
        WorktreeSetupResult,
    )
    from coordinator.handoff import (
        CommentRef,
        GithubAccess,
        GithubAccessRequest,
        PullRequestRef,
        PullRequestRequest,
        PushRequest,
        PushResult,
        ReviewRef,
        ReviewRequest,
        StatusCommentRequest,
        TickRequest,
        TickResult,
        WebhookRequest,
        WebhookResult,
    )
    from coordinator.hosts import Placement, Recipe
    from coordinator.plan import Gate, Plan
    from coordinator.report import Workspace
    from coordinator.work import (
        GateLevel,
        GateRequest,
        GateResult,
        SpecialistRequest,
        SpecialistResult,
    )

T = TypeVar("T")

# At most three attempts for everything that can be retried (the product's rule).
RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1))
# A killed worker is noticed within this, not at the task's timeout.
HEARTBEAT = timedelta(seconds=30)
# Our own timeouts (kill, drain the output) finish before Temporal's.
SLACK = timedelta(seconds=60)
GIT_TIMEOUT = timedelta(minutes=10)
# One GitHub API step: a few requests, each with its own 30 s timeout.
GITHUB_TIMEOUT = timedelta(minutes=3)
WEBHOOK_TIMEOUT = timedelta(seconds=30)
# Cancelling waits until processes are gone, so cleanup never races a running command.
WAIT = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
PREPARE_TIMEOUT = timedelta(minutes=30)  # a clone of a big repository
# A phase tells its execution where the workspace went (workflows/execution.py).
WORKSPACE_MOVED = "phase_workspace_moved"

R = TypeVar("R", bound=BaseModel)


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


# --- running where the workspace is --------------------------------------------------------


def _grace(ws: Workspace) -> timedelta | None:
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


def _failure_type(err: BaseException) -> str | None:
    cause = err.__cause__
    return cause.type if isinstance(cause, ApplicationError) else None


def _exec_dir(path: str) -> str:
    """`<workspace root>/<execution id>`: the clone and the task worktrees live under it."""
    return posixpath.dirname(posixpath.normpath(path))


def _rebound(ws: Workspace, value: str) -> str:
    """A path on a former host, as the same place on the current one."""
    here = _exec_dir(ws.path)
    for former in ws.former_dirs:
        if value == former or value.startswith(former + "/"):
            return here + value[len(former) :]
    return value


def _rebind(ws: Workspace, request: R) -> R:
    """The request with every path on a former host (also in nested models and lists, like
    the prepared environment and the context copies) naming the same place here."""
    if not ws.former_dirs:
        return request
    rebound: R = _rebind_value(ws, request)
    return rebound


def _rebind_value(ws: Workspace, value: Any) -> Any:
    if isinstance(value, str):
        return _rebound(ws, value)
    if isinstance(value, list):
        return [_rebind_value(ws, item) for item in value]
    if isinstance(value, BaseModel):
        changed = {}
        for name, item in value:
            new = _rebind_value(ws, item)
            if new != item:
                changed[name] = new
        return value.model_copy(update=changed) if changed else value
    return value


async def _on_host(
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
        request = _rebind(ws, request)
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
                schedule_to_start_timeout=_grace(ws),
                summary=summary,
                **options,
            )
            return result, request, queue
        except ActivityError as err:
            if queue is None or ws.home is None or not _never_started(err):
                raise
            workflow.logger.warning("no worker on %s picked up %r: re-homing", queue, summary)
        await rehome(ws, lost=queue)


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
        moved: Workspace = await workflow.execute_activity_method(
            WorkspaceActivities.prepare_workspace,
            PrepareWorkspaceInput(
                execution_id=ws.execution_id,
                repository=ws.repository,
                base_branch=ws.base_branch,
                branch=ws.branch,
                home=ws.home,
                resume_head=ws.base_commit,
            ),
            start_to_close_timeout=PREPARE_TIMEOUT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=RETRY,
            summary=f"re-home: {lost} is gone; the workspace again from {ws.home}"[:200],
        )
        if _exec_dir(moved.path) != _exec_dir(ws.path):
            ws.former_dirs.append(_exec_dir(ws.path))
        ws.path, ws.host_queue, ws.head_commit = moved.path, moved.host_queue, moved.head_commit
        # Keyed as the steps name them from now on; the placements still say the old host.
        ws.worktrees = {_rebound(ws, path): placed for path, placed in ws.worktrees.items()}
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
    recipe = _rebind(ws, ws.recipe)
    options: dict[str, Any] = {
        "task_queue": ws.host_queue,
        "schedule_to_start_timeout": _grace(ws),
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


async def run_specialist(
    ws: Workspace,
    ref: SpecialistRef,
    request: SpecialistRequest,
    *,
    summary: str,
    plan: Plan,
) -> SpecialistResult:
    if ref.backend == "command":
        method: Callable[..., Awaitable[SpecialistResult]] = CommandSpecialistActivities.run
    elif not workflow.patched("claude-backend"):
        # Executions started before the Claude backend existed keep what they were told.
        return SpecialistResult(
            task_id=request.task_id,
            specialist=ref.name,
            attempt=request.attempt,
            ok=False,
            summary=f"specialist '{ref.name}' uses the {ref.backend} backend, which this "
            "version cannot run yet; use a command specialist",
            exit_code=None,
            timed_out=False,
            duration_s=0.0,
            output_tail="",
            log_path="",
        )
    else:
        # A Claude specialist's definition is read on the worker; the plan gives the defaults.
        request = request.model_copy(
            update={
                "specialist_source": ref.source,
                "model": plan.model,
                "max_turns": ref.max_turns or plan.max_turns,
            }
        )
        method = ClaudeSpecialistActivities.run
        if ref.backend == "claude-code" and workflow.patched("claude-code-backend"):
            method = ClaudeCodeActivities.run
    while True:
        try:
            result, request, _ = await _on_host(
                ws,
                method,
                request,
                summary=summary,
                worktree="cwd",
                start_to_close_timeout=timedelta(seconds=request.timeout_s) + SLACK,
                heartbeat_timeout=HEARTBEAT,
                retry_policy=RETRY,
                cancellation_type=WAIT,
            )
            break
        except HostLost:
            # Nothing has worked in it yet: make it again on the new host and start there.
            if not await _make_again(ws, request.cwd):
                raise
    if (placed := ws.worktrees.get(request.cwd)) is not None:
        placed.pristine = None  # its work is only on this host now
    return result


async def run_gate(
    ws: Workspace,
    execution_id: str,
    level: GateLevel,
    scope: str,
    gate: Gate,
    cwd: str,
    attempt: int,
    environment: CommandEnvironment | None = None,
) -> GateResult:
    result, _, _ = await _on_host(
        ws,
        GateActivities.run_gate,
        GateRequest(
            execution_id=execution_id,
            level=level,
            scope=scope,
            gate=gate,
            cwd=cwd,
            attempt=attempt,
            environment=environment,
        ),
        summary=f"gate {gate.name}: {gate.run}"[:200],
        worktree="cwd",
        start_to_close_timeout=timedelta(seconds=gate.timeout) + SLACK,
        heartbeat_timeout=HEARTBEAT,
        retry_policy=RETRY,
        cancellation_type=WAIT,
    )
    return result


async def check_plan(ws: Workspace, request: PlanCheckInput) -> PlanCheck:
    """The plan checked again on the clone (its .claude/agents count), so on its host."""
    result, _, _ = await _on_host(
        ws,
        check_plan_activity,
        request,
        summary=f"check plan {request.plan.name}",
        start_to_close_timeout=timedelta(minutes=2),
        heartbeat_timeout=HEARTBEAT,
        retry_policy=RETRY,
    )
    return result


async def _git_step(
    ws: Workspace,
    method: Callable[..., Awaitable[T]],
    request: R,
    summary: str,
    worktree: str | None = None,
) -> tuple[T, R, str | None]:
    """Git activities: short, idempotent, and never abandoned half-way on cancel."""
    return await _on_host(
        ws,
        method,
        request,
        summary=summary[:200],
        worktree=worktree,
        start_to_close_timeout=GIT_TIMEOUT,
        heartbeat_timeout=HEARTBEAT,
        retry_policy=RETRY,
        cancellation_type=WAIT,  # never leave a merge landing after we moved on
    )


async def create_worktree(ws: Workspace, request: CreateWorktreeRequest) -> TaskWorktree:
    worktree, request, queue = await _git_step(
        ws,
        WorktreeActivities.create_task_worktree,
        request,
        f"worktree for {request.task_id} (attempt {request.attempt})",
    )
    if ws.host_queue is not None:
        # A fresh worktree (or a first attempt's) holds nothing yet: it can be made anew.
        fresh = request.fresh or request.attempt == 1
        before = next((w for w in ws.worktrees.values() if w.branch == worktree.branch), None)
        if not fresh and before is not None and before.host_queue != queue:
            # A later attempt builds on the earlier ones' work, which stayed on the lost host.
            raise HostLost(f"worktree for {request.task_id}", before.host_queue, ws)
        ws.worktrees = {p: w for p, w in ws.worktrees.items() if w.branch != worktree.branch}
        ws.worktrees[worktree.path] = Placement(
            host_queue=queue, branch=worktree.branch, pristine=request if fresh else None
        )
    return worktree


async def commit(ws: Workspace, request: CommitRequest) -> CommitResult:
    result, _, _ = await _git_step(
        ws,
        WorktreeActivities.commit_task,
        request,
        f"commit {request.task_id}: {request.title}",
        worktree="worktree",
    )
    return result


async def merge(ws: Workspace, request: MergeRequest) -> MergeResult:
    """Land a task's commit on the execution branch (`publish` pushes it after the merge
    lock). On a new host, a task whose branch stayed on the old one is found merged (the old
    host pushed it), or HostLost."""
    if ws.host_queue is not None:
        request = request.model_copy(update={"since": ws.base_commit})
    placed = next((w for w in ws.worktrees.values() if w.branch == request.task_branch), None)
    try:
        result, _, _ = await _git_step(
            ws,
            WorktreeActivities.merge_task,
            request,
            f"merge {request.task_id} into {request.execution_branch}",
        )
    except ActivityError as err:
        if _failure_type(err) == TASK_BRANCH_MISSING and ws.moves:
            raise HostLost(
                f"merge {request.task_id}", placed.host_queue if placed else None, ws
            ) from err
        raise
    return result


async def publish(ws: Workspace, commit: str) -> None:
    """Push the execution branch, with `commit` merged, to its home; nothing for workspaces
    without one (prepared before host queues). A commit the lost host merged but never
    pushed is gone: HostLost, and its task runs again on the new host."""
    if ws.home is None or ws.host_queue is None:
        return
    try:
        await _git_step(
            ws,
            publish_branch,
            PublishRequest(workspace=ws.path, branch=ws.branch, home=ws.home, commit=commit),
            f"publish {ws.branch} at {commit[:12]} to {ws.home}",
        )
    except ActivityError as err:
        if _failure_type(err) == COMMIT_MISSING and ws.moves:
            raise HostLost(f"publish {commit[:12]}", None, ws) from err
        raise


async def remove_worktree(ws: Workspace, request: RemoveWorktreeRequest) -> None:
    """Runs on the current host: a worktree left on a lost host went with it."""
    await _git_step(
        ws,
        WorktreeActivities.remove_task_worktree,
        request,
        f"remove worktree of {request.task_id}",
    )
    branch = task_branch(request.execution_id, request.task_id)
    ws.worktrees = {p: w for p, w in ws.worktrees.items() if w.branch != branch}


async def clean_up(ws: Workspace, request: PendingWorkRequest) -> PendingWorkResult:
    result, _, _ = await _git_step(
        ws,
        WorktreeActivities.commit_pending_work,
        request,
        "remove the execution's task worktrees",
    )
    ws.worktrees = {}
    return result


async def diff(ws: Workspace, request: DiffRequest) -> DiffSummary:
    result, _, _ = await _git_step(
        ws,
        WorktreeActivities.diff_from_base,
        request,
        f"diff from {request.base_commit[:12]}",
    )
    return result


# --- the GitHub handoff and notifications --------------------------------------------------


async def _github_step(
    method: Callable[..., Awaitable[T]],
    request: Any,
    summary: str,
    timeout: timedelta = GITHUB_TIMEOUT,
) -> T:
    """GitHub activities find what an earlier attempt did before doing it: safe to retry."""
    result: T = await workflow.execute_activity_method(
        method,
        request,
        start_to_close_timeout=timeout,
        heartbeat_timeout=HEARTBEAT,
        retry_policy=RETRY,
        summary=summary[:200],
    )
    return result


async def github_access(request: GithubAccessRequest) -> GithubAccess:
    return await _github_step(
        GithubActivities.access, request, f"GitHub handoff to {request.repo}: token present?"
    )


async def github_push(ws: Workspace, request: PushRequest) -> PushResult:
    """From the clone, so on the workspace's host (the API steps may run anywhere)."""
    result, _, _ = await _on_host(
        ws,
        GithubActivities.push,
        request,
        summary=f"push {request.branch} to {request.repo}"[:200],
        start_to_close_timeout=GIT_TIMEOUT,
        heartbeat_timeout=HEARTBEAT,
        retry_policy=RETRY,
    )
    return result


async def github_pull_request(request: PullRequestRequest) -> PullRequestRef:
    return await _github_step(
        GithubActivities.pull_request,
        request,
        f"pull request {request.branch} → {request.base} in {request.repo}",
    )


async def github_tick(request: TickRequest) -> TickResult:
    return await _github_step(
        GithubActivities.tick_issue,
        request,
        f"tick {len(request.tasks)} tasks in {request.repo}#{request.issue}",
    )


async def github_status_comment(request: StatusCommentRequest) -> CommentRef:
    return await _github_step(
        GithubActivities.status_comment,
        request,
        f"status comment on {request.repo}#{request.number}",
    )


async def github_review(request: ReviewRequest) -> ReviewRef:
    return await _github_step(
        GithubActivities.review,
        request,
        f"review ({request.verdict}) on {request.repo}#{request.number}",
    )


async def notify_webhook(request: WebhookRequest) -> WebhookResult:
    return await _github_step(
        NotifyActivities.webhook,
        request,
        f"webhook: {request.payload.get('event', '')}",
        WEBHOOK_TIMEOUT,
    )


# --- the plan's environment: only plans that ask for it (setup, context, env, status_file) ----


async def prepare_environment(
    ws: Workspace, request: PrepareEnvironmentInput
) -> PreparedEnvironment:
    prepared, request, _ = await _on_host(
        ws,
        EnvironmentActivities.prepare_environment,
        request,
        summary="prepare the environment, copy the context documents",
        start_to_close_timeout=GIT_TIMEOUT,
        heartbeat_timeout=HEARTBEAT,
        retry_policy=RETRY,
    )
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
    return prepared


async def run_setup_command(ws: Workspace, request: SetupCommandRequest) -> SetupCommandResult:
    command = request.command
    result, request, _ = await _on_host(
        ws,
        EnvironmentActivities.run_setup_command,
        request,
        summary=f"setup {command.name}: {command.run}"[:200],
        start_to_close_timeout=timedelta(seconds=command.timeout) + SLACK,
        heartbeat_timeout=HEARTBEAT,
        retry_policy=RETRY,
        cancellation_type=WAIT,
    )
    if ws.host_queue is not None and request.cwd == ws.path:
        # Made again after a move; one a human skipped never passed, so it is not here.
        recipe = _recipe(ws)
        setup = [c for c in recipe.setup if c.name != command.name] + [command]
        ws.recipe = recipe.model_copy(update={"setup": setup, "environment": request.environment})
    return result


async def setup_worktree(ws: Workspace, request: WorktreeSetupRequest) -> WorktreeSetupResult:
    if ws.host_queue is not None:
        ws.recipe = _recipe(ws).model_copy(
            update={"worktree_setup": request.commands, "environment": request.environment}
        )
    timeout = timedelta(seconds=sum(c.timeout for c in request.commands)) + SLACK
    while True:
        try:
            result, _, _ = await _on_host(
                ws,
                EnvironmentActivities.setup_worktree,
                request,
                summary=f"setup in the worktree of {request.scope}"[:200],
                worktree="worktree",
                start_to_close_timeout=timeout,
                heartbeat_timeout=HEARTBEAT,
                retry_policy=RETRY,
                cancellation_type=WAIT,
            )
            return result
        except HostLost:
            # Setting up is not work of its own: a pristine worktree is made again.
            if not await _make_again(ws, request.worktree, set_up=False):
                raise


def _recipe(ws: Workspace) -> Recipe:
    return ws.recipe or Recipe()


async def _make_again(ws: Workspace, worktree: str, *, set_up: bool = True) -> bool:
    """A worktree nothing has worked in yet, made again on the workspace's (new) host, with
    its per-worktree setup; False when it holds work only the lost host had."""
    placed = ws.worktrees.get(_rebound(ws, worktree))
    if placed is None or placed.pristine is None:
        return False
    made = await create_worktree(ws, placed.pristine)
    recipe = ws.recipe
    if set_up and recipe is not None and recipe.worktree_setup:
        await setup_worktree(
            ws,
            WorktreeSetupRequest(
                execution_id=placed.pristine.execution_id,
                worktree=made.path,
                scope=placed.pristine.task_id,
                commands=recipe.worktree_setup,
                environment=recipe.environment,
            ),
        )
    return True


# A local activity: its input (the whole progress) stays out of history, and each write adds
# one marker event rather than three activity events.
STATUS_FILE_TIMEOUT = timedelta(seconds=30)


async def write_status(request: StatusFileRequest) -> None:
    await workflow.execute_local_activity(
        write_status_file,
        request,
        start_to_close_timeout=STATUS_FILE_TIMEOUT,
        retry_policy=RETRY,
        summary="status file",
    )
