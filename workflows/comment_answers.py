"""Answers by comment, as the execution takes them: while a question waits (an escalation,
an approval) it reads the `/coord ...` comments written on the plan's GitHub issue (or, with
none, its pull request once there is one), takes each answer through the same path as
`coord resolve` / `coord approve` (the callbacks the conductor gives), and replies to every
command comment: taken, refused, not understood, which escalation, already answered.

Durable and exactly once: the comments read so far are recorded in the progress
(`handoff.comments_read_to`, carried over a continue-as-new), an answer is taken by workflow
code (replayed, never repeated, after a worker restart), and a reply names the comment it
answers, so a retried reply is found, not posted again. The polling interval adapts: 30 s
after a question appears, doubling to 10 min while nobody answers (Temporal timers: a
days-long wait costs a few events an hour). Workflow code: deterministic, no I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from coordinator.comment_commands import (
        CommandComment,
        CommandsRequest,
        ReplyRequest,
        interpret,
    )
    from coordinator.escalation import Approval, ApprovalAnswer, Escalation, Resolution
    from coordinator.execution import ExecutionInput
    from coordinator.report import Progress
    from workflows.github_steps import github_read_commands, github_reply
    from workflows.notices import quietly

# Executions started before answers by comment existed replay without reading comments.
COMMENT_ANSWERS_PATCH = "comment-answers"

# After a day of the same questions, read at most every hour (with the default settings):
# a 30-day wait then costs about 10k history events, far below Temporal's limit.
LONG_WAIT = timedelta(days=1)
SLOWEST = timedelta(hours=1)

Resolve = Callable[[Resolution], Awaitable[Escalation]]
Check = Callable[[Resolution], object]
Approve = Callable[[Literal["approved", "rejected"], ApprovalAnswer], Approval]


class CommentAnswers:
    def __init__(
        self,
        progress: Progress,
        request: ExecutionInput,
        resolve: Resolve,
        check: Check,
        approve: Approve,
    ) -> None:
        self._progress = progress
        self._execution_id = request.execution_id
        self._github = request.plan.handoff.github
        self._resolve = resolve
        self._check = check
        self._approve = approve
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._asked: tuple[str, ...] = ()  # the questions waiting when the timer started

    def start(self) -> None:
        """Read comments for answers from now on (with an enabled GitHub handoff)."""
        handoff = self._progress.handoff
        if handoff is None or not handoff.enabled or self._task is not None:
            return
        if self._github is None or not self._github.answers_by_comment:
            return
        if not workflow.patched(COMMENT_ANSWERS_PATCH):
            return
        self._closing = False
        self._task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        """Stop reading (the end, or a handover): a read or reply under way finishes first."""
        self._closing = True
        if self._task is not None:
            await self._task
            self._task = None

    def _waiting(self) -> tuple[str, ...]:
        p = self._progress
        asked = [e.id for e in p.pending_escalations]
        if p.pending_approval is not None:
            asked.append(p.pending_approval.name)
        return tuple(asked) if self._number() is not None else ()

    def _number(self) -> int | None:
        handoff = self._progress.handoff
        if handoff is None or not handoff.enabled:
            return None
        return handoff.issue or (handoff.pull_request.number if handoff.pull_request else None)

    async def _loop(self) -> None:
        # Where the comments end once there is somewhere to read (the issue, or the pull
        # request when it is opened): older comments answer nothing.
        await workflow.wait_condition(lambda: self._closing or self._number() is not None)
        if self._closing:
            return
        if self._progress.handoff and self._progress.handoff.comments_read_to is None:
            await self._read()
        assert self._github is not None
        first = timedelta(seconds=self._github.comment_poll_seconds)
        longest = max(first, timedelta(seconds=self._github.comment_poll_max_seconds))
        interval, self._asked, since = first, (), workflow.now()
        while True:
            await workflow.wait_condition(lambda: self._closing or bool(self._waiting()))
            if self._closing:
                return
            if self._waiting() != self._asked:  # a new question (or one fewer): look soon
                interval, self._asked, since = first, self._waiting(), workflow.now()
            elif workflow.now() - since > LONG_WAIT:  # a wait of days: fewer events
                interval = max(interval, min(SLOWEST, longest * 6))
            try:
                await workflow.wait_condition(
                    lambda: self._closing or self._waiting() != self._asked, timeout=interval
                )
            except TimeoutError:
                await self._read()
                interval = max(interval, min(interval * 2, longest))
            if self._closing:
                return

    async def _read(self) -> None:
        handoff, number = self._progress.handoff, self._number()
        if handoff is None or number is None:
            return
        read = await quietly(
            self._progress,
            "comments not read for answers",
            github_read_commands(
                CommandsRequest(
                    execution_id=self._execution_id,
                    repo=handoff.repo,
                    number=number,
                    after_id=handoff.comments_read_to,
                )
            ),
            report=None,
        )
        if read is None:
            return
        for comment in read.commands:
            if handoff.comments_read_to is not None and comment.id <= handoff.comments_read_to:
                continue
            reply = await self._take(comment, handoff.repo)
            handoff.comments_read_to = comment.id  # taken: never again
            await quietly(
                self._progress,
                "reply to a comment not posted",
                github_reply(
                    ReplyRequest(
                        execution_id=self._execution_id,
                        repo=handoff.repo,
                        number=number,
                        comment_id=comment.id,
                        body=reply,
                    )
                ),
                report=None,
            )
        handoff.comments_read_to = max(handoff.comments_read_to or 0, read.last_id)

    async def _take(self, comment: CommandComment, repo: str) -> str:
        """Take the comment's answer, if it is one that fits; the reply to post."""
        meant = interpret(comment, repo, self._progress)
        if meant.resolution is not None:
            try:
                self._check(meant.resolution)
            except ApplicationError as err:
                return f"@{comment.login}: not taken: {err.message}."
            await self._resolve(meant.resolution)
        elif meant.approval is not None and meant.approval_answer is not None:
            self._approve(meant.approval, meant.approval_answer)
        return meant.reply
