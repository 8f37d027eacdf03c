"""The activity calls every phase makes, with the product's retry rule, timeouts, heartbeats
and summaries that make the Temporal UI read like the plan. Workflow code: no I/O here.

Each step runs where the execution's `Workspace` is (workflows/placement.py: the host queue,
re-homing when its worker is gone, `HostLost`); a worktree nothing has worked in yet is made
again on the new host, transparently (`_make_again`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from activities.claude.agent import ClaudeSpecialistActivities
    from activities.claude_code.activity import ClaudeCodeActivities
    from activities.command_specialist import CommandSpecialistActivities
    from activities.environment import EnvironmentActivities, write_status_file
    from activities.gates import GateActivities
    from activities.github import GithubActivities
    from activities.home import COMMIT_MISSING, publish_branch
    from activities.plan_check import check_plan as check_plan_activity
    from activities.worktrees import TASK_BRANCH_MISSING, WorktreeActivities
    from coordinator.branches import (
        CommitRequest,
        CommitResult,
        CreateWorktreeRequest,
        DiffRequest,
        DiffSummary,
        LandRequest,
        LandResult,
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
        SetupCommandRequest,
        SetupCommandResult,
        SpecialistRef,
        StatusFileRequest,
        WorktreeSetupRequest,
        WorktreeSetupResult,
    )
    from coordinator.handoff import (
        PushRequest,
        PushResult,
    )
    from coordinator.plan import Gate, Plan
    from coordinator.report import Workspace
    from coordinator.work import (
        GateLevel,
        GateRequest,
        GateResult,
        SpecialistRequest,
        SpecialistResult,
    )
    from workflows import placement

    # Re-exported (`x as x`): the phases and the execution call them as steps.
    from workflows.github_steps import github_access as github_access
    from workflows.github_steps import github_pull_request as github_pull_request
    from workflows.github_steps import github_review as github_review
    from workflows.github_steps import github_status_comment as github_status_comment
    from workflows.github_steps import github_tick as github_tick
    from workflows.github_steps import notify_webhook as notify_webhook
    from workflows.placement import WORKSPACE_MOVED as WORKSPACE_MOVED
    from workflows.placement import HostLost as HostLost
    from workflows.placement import on_host
    from workflows.placement import prepare_workspace as prepare_workspace
    from workflows.timeouts import (
        GIT_TIMEOUT,
        HEARTBEAT,
        PLAN_CHECK_TIMEOUT,
        RETRY,
        SLACK,
        STATUS_FILE_TIMEOUT,
        WAIT,
    )

T = TypeVar("T")
R = TypeVar("R", bound=BaseModel)


def _failure_type(err: BaseException) -> str | None:
    cause = err.__cause__
    return cause.type if isinstance(cause, ApplicationError) else None


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
    if request.worktree is not None:
        # The activity makes the worktree (a first attempt's, or a fresh one) on the host it
        # runs on: wherever an earlier one was, even on a host that is gone, does not matter.
        made = request.worktree
        placement.forget_worktree(ws, task_branch(made.execution_id, made.task_id))
    while True:
        try:
            result, request, queue = await on_host(
                ws,
                method,
                request,
                summary=summary,
                worktree="cwd",
                start_to_close_timeout=_turn_time(request),
                heartbeat_timeout=HEARTBEAT,
                retry_policy=RETRY,
                cancellation_type=WAIT,
            )
            break
        except HostLost:
            # Nothing has worked in it yet: make it again on the new host and start there.
            if not await _make_again(ws, request.cwd):
                raise
    worked_in = request.cwd
    if result.worktree is not None and request.worktree is not None:  # it made the worktree
        placement.place_worktree(ws, result.worktree, request.worktree, queue)
        worked_in = result.worktree.path  # the key it is placed under
    placement.worked_in(ws, worked_in)
    if result.landed is not None and result.landed.removed:  # its activity landed it
        placement.forget_worktree(ws, task_branch(request.execution_id, request.task_id))
    return result


def _turn_time(request: SpecialistRequest) -> timedelta:
    """The specialist's time, and its gates' and its landing's when it does them too."""
    then, turn = request.then, timedelta(seconds=request.timeout_s) + SLACK
    if then is None:
        return turn
    gates = timedelta(seconds=sum(g.timeout for g in then.gates))
    return turn + gates + (GIT_TIMEOUT if then.merge is not None else timedelta())


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
    result, _, _ = await on_host(
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
    result, _, _ = await on_host(
        ws,
        check_plan_activity,
        request,
        summary=f"check plan {request.plan.name}",
        start_to_close_timeout=PLAN_CHECK_TIMEOUT,
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
    return await on_host(
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
    placement.place_worktree(ws, worktree, request, queue)
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


def findable_after_a_move(ws: Workspace, request: MergeRequest) -> MergeRequest:
    """On a workspace that can move (it has a host queue), a merge that finds its task landed
    since the execution's base, by a host lost before it could say so."""
    if ws.host_queue is None:
        return request
    return request.model_copy(update={"since": ws.base_commit})


async def merge(ws: Workspace, request: MergeRequest) -> MergeResult:
    """Land a task's commit on the execution branch (`publish` pushes it after the merge
    lock). On a new host, a task whose branch stayed on the old one is found merged (the old
    host pushed it), or HostLost."""
    request = findable_after_a_move(ws, request)
    placed = placement.placed_on(ws, request.task_branch)
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


async def land(ws: Workspace, request: LandRequest) -> LandResult:
    """A task's `commit`, `merge`, `publish` and `remove_worktree` in one activity, with the
    same rules: on a new host, a task whose branch or commit stayed on the old one is
    HostLost (unless it landed before the old host went)."""
    if ws.host_queue is not None:
        merge = findable_after_a_move(ws, request.merge)
        home = ws.home if ws.home is not None else request.home
        request = request.model_copy(update={"merge": merge, "home": home})
    branch = request.merge.task_branch
    placed = placement.placed_on(ws, branch)
    try:
        result, _, _ = await _git_step(
            ws,
            WorktreeActivities.land_task,
            request,
            f"land {request.merge.task_id}: {request.merge.title}",
            worktree="worktree",
        )
    except ActivityError as err:
        if _failure_type(err) in (TASK_BRANCH_MISSING, COMMIT_MISSING) and ws.moves:
            raise HostLost(
                f"land {request.merge.task_id}", placed.host_queue if placed else None, ws
            ) from err
        raise
    if result.removed:
        placement.forget_worktree(ws, branch)
    return result


async def remove_worktree(ws: Workspace, request: RemoveWorktreeRequest) -> None:
    """Runs on the current host: a worktree left on a lost host went with it."""
    await _git_step(
        ws,
        WorktreeActivities.remove_task_worktree,
        request,
        f"remove worktree of {request.task_id}",
    )
    placement.forget_worktree(ws, task_branch(request.execution_id, request.task_id))


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


# --- the GitHub handoff from the clone (the API steps: workflows/github_steps.py) ------------


async def github_push(ws: Workspace, request: PushRequest) -> PushResult:
    """From the clone, so on the workspace's host (the API steps may run anywhere)."""
    result, _, _ = await on_host(
        ws,
        GithubActivities.push,
        request,
        summary=f"push {request.branch} to {request.repo}"[:200],
        start_to_close_timeout=GIT_TIMEOUT,
        heartbeat_timeout=HEARTBEAT,
        retry_policy=RETRY,
    )
    return result


# --- the plan's environment: only plans that ask for it (setup, context, env, status_file) ----


async def prepare_environment(
    ws: Workspace, request: PrepareEnvironmentInput
) -> PreparedEnvironment:
    prepared, request, _ = await on_host(
        ws,
        EnvironmentActivities.prepare_environment,
        request,
        summary="prepare the environment, copy the context documents",
        start_to_close_timeout=GIT_TIMEOUT,
        heartbeat_timeout=HEARTBEAT,
        retry_policy=RETRY,
    )
    placement.remember_environment(ws, request)
    return prepared


async def run_setup_command(ws: Workspace, request: SetupCommandRequest) -> SetupCommandResult:
    command = request.command
    result, request, _ = await on_host(
        ws,
        EnvironmentActivities.run_setup_command,
        request,
        summary=f"setup {command.name}: {command.run}"[:200],
        start_to_close_timeout=timedelta(seconds=command.timeout) + SLACK,
        heartbeat_timeout=HEARTBEAT,
        retry_policy=RETRY,
        cancellation_type=WAIT,
    )
    placement.remember_setup(ws, request)
    return result


async def setup_worktree(ws: Workspace, request: WorktreeSetupRequest) -> WorktreeSetupResult:
    placement.remember_worktree_setup(ws, request)
    timeout = timedelta(seconds=sum(c.timeout for c in request.commands)) + SLACK
    while True:
        try:
            result, _, _ = await on_host(
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


async def _make_again(ws: Workspace, worktree: str, *, set_up: bool = True) -> bool:
    """A worktree nothing has worked in yet, made again on the workspace's (new) host, with
    its per-worktree setup; False when it holds work only the lost host had."""
    request = placement.pristine(ws, worktree)
    if request is None:
        return False
    made = await create_worktree(ws, request)
    recipe = ws.recipe
    if set_up and recipe is not None and recipe.worktree_setup:
        await setup_worktree(
            ws,
            WorktreeSetupRequest(
                execution_id=request.execution_id,
                worktree=made.path,
                scope=request.task_id,
                commands=recipe.worktree_setup,
                environment=recipe.environment,
            ),
        )
    return True


async def write_status(request: StatusFileRequest) -> None:
    """A local activity: its input (the whole progress) stays out of history, and each write
    adds one marker event rather than three activity events."""
    await workflow.execute_local_activity(
        write_status_file,
        request,
        start_to_close_timeout=STATUS_FILE_TIMEOUT,
        retry_policy=RETRY,
        summary="status file",
    )
