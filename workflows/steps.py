"""The activity calls every phase makes, with the product's retry rule, timeouts, heartbeats
and summaries that make the Temporal UI read like the plan. Workflow code: no I/O here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.claude.agent import ClaudeSpecialistActivities
    from activities.command_specialist import CommandSpecialistActivities
    from activities.environment import EnvironmentActivities, write_status_file
    from activities.gates import GateActivities
    from activities.github import GithubActivities
    from activities.notify import NotifyActivities
    from activities.worktrees import WorktreeActivities
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
        RemoveWorktreeRequest,
        TaskWorktree,
    )
    from coordinator.environment import CommandEnvironment
    from coordinator.execution import (
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
    from coordinator.plan import Gate, Plan
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


async def run_specialist(
    ref: SpecialistRef, request: SpecialistRequest, *, summary: str, plan: Plan
) -> SpecialistResult:
    if ref.backend == "command":
        return await workflow.execute_activity_method(
            CommandSpecialistActivities.run,
            request,
            start_to_close_timeout=timedelta(seconds=request.timeout_s) + SLACK,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=RETRY,
            cancellation_type=WAIT,
            summary=summary,
        )
    if not workflow.patched("claude-backend"):
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
    # A Claude specialist's definition is read on the worker; the plan gives the defaults.
    request = request.model_copy(
        update={
            "specialist_source": ref.source,
            "model": plan.model,
            "max_turns": ref.max_turns or plan.max_turns,
        }
    )
    return await workflow.execute_activity_method(
        ClaudeSpecialistActivities.run,
        request,
        start_to_close_timeout=timedelta(seconds=request.timeout_s) + SLACK,
        heartbeat_timeout=HEARTBEAT,
        retry_policy=RETRY,
        cancellation_type=WAIT,
        summary=summary,
    )


async def run_gate(
    execution_id: str,
    level: GateLevel,
    scope: str,
    gate: Gate,
    cwd: str,
    attempt: int,
    environment: CommandEnvironment | None = None,
) -> GateResult:
    return await workflow.execute_activity_method(
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
        start_to_close_timeout=timedelta(seconds=gate.timeout) + SLACK,
        heartbeat_timeout=HEARTBEAT,
        retry_policy=RETRY,
        cancellation_type=WAIT,
        summary=f"gate {gate.name}: {gate.run}"[:200],
    )


async def _git_step(method: Callable[..., Awaitable[T]], request: Any, summary: str) -> T:
    """Git activities: short, idempotent, and never abandoned half-way on cancel."""
    result: T = await workflow.execute_activity_method(
        method,
        request,
        start_to_close_timeout=GIT_TIMEOUT,
        heartbeat_timeout=HEARTBEAT,
        retry_policy=RETRY,
        cancellation_type=WAIT,  # never leave a merge landing after we moved on
        summary=summary[:200],
    )
    return result


async def create_worktree(request: CreateWorktreeRequest) -> TaskWorktree:
    return await _git_step(
        WorktreeActivities.create_task_worktree,
        request,
        f"worktree for {request.task_id} (attempt {request.attempt})",
    )


async def commit(request: CommitRequest) -> CommitResult:
    return await _git_step(
        WorktreeActivities.commit_task, request, f"commit {request.task_id}: {request.title}"
    )


async def merge(request: MergeRequest) -> MergeResult:
    return await _git_step(
        WorktreeActivities.merge_task,
        request,
        f"merge {request.task_id} into {request.execution_branch}",
    )


async def remove_worktree(request: RemoveWorktreeRequest) -> None:
    await _git_step(
        WorktreeActivities.remove_task_worktree, request, f"remove worktree of {request.task_id}"
    )


async def clean_up(request: PendingWorkRequest) -> PendingWorkResult:
    return await _git_step(
        WorktreeActivities.commit_pending_work, request, "remove the execution's task worktrees"
    )


async def diff(request: DiffRequest) -> DiffSummary:
    return await _git_step(
        WorktreeActivities.diff_from_base, request, f"diff from {request.base_commit[:12]}"
    )


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


async def github_push(request: PushRequest) -> PushResult:
    return await _github_step(
        GithubActivities.push, request, f"push {request.branch} to {request.repo}", GIT_TIMEOUT
    )


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


async def prepare_environment(request: PrepareEnvironmentInput) -> PreparedEnvironment:
    return await workflow.execute_activity_method(
        EnvironmentActivities.prepare_environment,
        request,
        start_to_close_timeout=GIT_TIMEOUT,
        heartbeat_timeout=HEARTBEAT,
        retry_policy=RETRY,
        summary="prepare the environment, copy the context documents",
    )


async def run_setup_command(request: SetupCommandRequest) -> SetupCommandResult:
    command = request.command
    return await workflow.execute_activity_method(
        EnvironmentActivities.run_setup_command,
        request,
        start_to_close_timeout=timedelta(seconds=command.timeout) + SLACK,
        heartbeat_timeout=HEARTBEAT,
        retry_policy=RETRY,
        cancellation_type=WAIT,
        summary=f"setup {command.name}: {command.run}"[:200],
    )


async def setup_worktree(request: WorktreeSetupRequest) -> WorktreeSetupResult:
    return await workflow.execute_activity_method(
        EnvironmentActivities.setup_worktree,
        request,
        start_to_close_timeout=timedelta(seconds=sum(c.timeout for c in request.commands)) + SLACK,
        heartbeat_timeout=HEARTBEAT,
        retry_policy=RETRY,
        cancellation_type=WAIT,
        summary=f"setup in the worktree of {request.scope}"[:200],
    )


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
