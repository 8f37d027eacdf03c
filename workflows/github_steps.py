"""The GitHub API and webhook steps of the handoff and the notices: they need no clone, so
they run on any worker (the push, from the clone, is in workflows/steps.py). Each finds what
an earlier attempt of it did before doing it: safe to retry. Workflow code: no I/O here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.github import GithubActivities
    from activities.github_comments import GithubCommentActivities
    from activities.notify import NotifyActivities
    from coordinator.comment_commands import (
        CommandsRequest,
        CommandsResult,
        ReplyRef,
        ReplyRequest,
    )
    from coordinator.handoff import (
        CommentRef,
        GithubAccess,
        GithubAccessRequest,
        PullRequestRef,
        PullRequestRequest,
        ReviewRef,
        ReviewRequest,
        StatusCommentRequest,
        TickRequest,
        TickResult,
        WebhookRequest,
        WebhookResult,
    )
    from workflows.timeouts import GITHUB_TIMEOUT, HEARTBEAT, RETRY, WEBHOOK_TIMEOUT

T = TypeVar("T")


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


async def github_read_commands(request: CommandsRequest) -> CommandsResult:
    return await _github_step(
        GithubCommentActivities.read_commands,
        request,
        f"read /coord comments on {request.repo}#{request.number}",
    )


async def github_reply(request: ReplyRequest) -> ReplyRef:
    return await _github_step(
        GithubCommentActivities.reply,
        request,
        f"reply to comment {request.comment_id} on {request.repo}#{request.number}",
    )


async def notify_webhook(request: WebhookRequest) -> WebhookResult:
    return await _github_step(
        NotifyActivities.webhook,
        request,
        f"webhook: {request.payload.get('event', '')}",
        WEBHOOK_TIMEOUT,
    )
