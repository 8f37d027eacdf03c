"""Notices: the status comment on the GitHub issue (or pull request) and the webhook.

`Notices` owns when people are told: a background loop posts whenever what they should see
changed (a phase, a question, the end), one post at a time; the webhook fires only when a new
question waits and at the end. The execution tells it `changed()` whenever it publishes,
`pause()`s it before a continue-as-new (what changed is posted first), `resume()`s it in the
next run from what the last one had told people (nothing is posted twice), and `close()`s it
before the final `post(report)`. Failures are reported, never raised: people miss a note,
the work goes on. Workflow code: deterministic, no I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from coordinator.execution import ExecutionInput
    from coordinator.handoff import StatusCommentRequest, WebhookRequest
    from coordinator.report import ExecutionReport, Progress
    from coordinator.slack_message import slack_payload
    from coordinator.status_comment import (
        render_status,
        status_signature,
        waiting_signature,
        webhook_payload,
        webhook_text,
    )
    from workflows import steps
    from workflows.phase import root_message

T = TypeVar("T")


async def quietly(
    progress: Progress,
    what: str,
    call: Awaitable[T],
    *,
    report: ExecutionReport | None,
    add_problem: bool = True,
) -> T | None:
    """Await a notice or handoff step; a failure is logged and listed among the problems
    (of the progress, and of the report at the end), and gives None."""
    try:
        return await call
    except ActivityError as err:
        message = f"{what}: {root_message(err)}"
        workflow.logger.warning(message)
        if add_problem and message not in progress.problems:
            progress.problems.append(message)
        if add_problem and report is not None and message not in report.problems:
            report.problems.append(message)
        return None


class Notices:
    def __init__(self, progress: Progress, request: ExecutionInput) -> None:
        self._progress = progress
        self._request = request
        self._loop_task: asyncio.Task[None] | None = None
        self._wanted: tuple[object, ...] | None = None  # what the last post showed
        self._dirty = False
        self._closing = False
        self._waiting_notified: tuple[str, ...] = ()  # the questions the webhook told

    @property
    def running(self) -> bool:
        """Started in this run (it may be paused or closed since)."""
        return self._loop_task is not None

    def wanted(self) -> bool:
        """Anyone to tell: the plan hands off to GitHub, or has a webhook."""
        plan = self._request.plan
        return plan.handoff.github is not None or plan.notifies

    def start(self) -> None:
        self._closing = False
        self._loop_task = asyncio.create_task(self._loop())

    def resume(self) -> None:
        """After a continue-as-new: keep people informed (if the last run did), from what
        the last run had told them: what the progress shows (nothing is posted twice)."""
        if self._progress.handoff is None and not self._request.plan.notifies:
            return
        self._wanted = status_signature(self._progress)
        self._waiting_notified = waiting_signature(self._progress)
        self.start()

    def changed(self) -> None:
        if self._loop_task is not None and not self._closing:
            wanted = status_signature(self._progress)
            if wanted != self._wanted:
                self._wanted = wanted
                self._dirty = True

    async def pause(self) -> None:
        """Before a continue-as-new: what changed is posted, then the loop stops."""
        if self._loop_task is None:
            return
        await self.close()
        if self._dirty:
            self._dirty = False
            await self.post(None)

    async def close(self) -> None:
        """The loop stops (the final post follows, from the caller)."""
        self._closing = True
        if self._loop_task is not None:
            await self._loop_task

    async def _loop(self) -> None:
        while True:
            await workflow.wait_condition(lambda: self._dirty or self._closing)
            if self._closing:
                return
            self._dirty = False
            await self.post(None)

    async def post(self, report: ExecutionReport | None) -> None:
        """Update the status comment and, when a new question waits or at the end (`report`),
        the webhook."""
        waiting = waiting_signature(self._progress)
        if self._request.plan.notifies and (
            report is not None or (waiting and waiting != self._waiting_notified)
        ):
            self._waiting_notified = waiting
            await self._webhook(report)
        await self._status_comment(report)

    async def _webhook(self, report: ExecutionReport | None) -> None:
        p = self._progress
        ui_url = self._request.ui_url
        notify = self._request.plan.notify
        text = webhook_text(p, ui_url=ui_url, report=report)
        if notify.format == "slack":
            payload = slack_payload(p, text=text, ui_url=ui_url, report=report)
        else:
            payload = webhook_payload(
                p,
                event="finished" if report is not None else "waiting",
                text=text,
                ui_url=ui_url,
                report=report,
            )
        await quietly(
            p,
            "webhook not delivered",
            steps.notify_webhook(
                WebhookRequest(
                    execution_id=p.execution_id,
                    url=notify.webhook,
                    url_env=notify.webhook_env,
                    payload=payload,
                )
            ),
            report=report,
            add_problem=False,
        )

    async def _status_comment(self, report: ExecutionReport | None) -> None:
        p = self._progress
        handoff = p.handoff
        if handoff is None or not handoff.enabled:
            return
        number = handoff.issue or (handoff.pull_request.number if handoff.pull_request else None)
        if number is None:
            return  # no issue: the comment goes on the pull request once there is one
        comment = await quietly(
            p,
            "status comment not updated",
            steps.github_status_comment(
                StatusCommentRequest(
                    repo=handoff.repo,
                    number=number,
                    execution_id=p.execution_id,
                    body=render_status(p, ui_url=self._request.ui_url, report=report),
                )
            ),
            report=report,
        )
        if comment is not None:
            handoff.status_comment_url = comment.url
