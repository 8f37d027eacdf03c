"""The GitHub handoff as the execution sees it: whether this worker may hand off, what the
integration and review phases get to do it, what they report back, and the last push and
pull request body at the end.

`GithubHandoff` is the one writer of the handoff's state (`progress.handoff`, which the
progress query, the status comment and the report show). The phases do the pushing and the
opening of the pull request; this helper gives them their GitHub input and records their
results. Workflow code: deterministic, no I/O.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from coordinator.execution import ExecutionInput, ReviewResult
    from coordinator.handoff import (
        GithubAccessRequest,
        GithubHandoffResult,
        GithubPhaseInput,
        HandoffState,
        PullRequestRequest,
        PushRequest,
        TaskRef,
    )
    from coordinator.pull_request import pull_request_body
    from coordinator.report import ExecutionReport, Progress
    from workflows import steps
    from workflows.notices import quietly


class GithubHandoff:
    def __init__(self, progress: Progress, request: ExecutionInput) -> None:
        self._progress = progress
        self._request = request
        self._github = request.plan.handoff.github  # None: the plan hands off nothing

    @property
    def enabled(self) -> bool:
        """The plan hands off to GitHub, and this worker can (a token is present)."""
        handoff = self._progress.handoff
        return self._github is not None and handoff is not None and handoff.enabled

    async def check_access(self) -> None:
        """Ask whether this worker can reach GitHub (a token is present; its value stays on
        the worker), and start the handoff's state with the answer."""
        gh = self._github
        if gh is None:
            return
        access = await steps.github_access(GithubAccessRequest(repo=gh.repo))
        ws = self._progress.workspace
        self._progress.handoff = HandoffState(
            repo=gh.repo,
            issue=gh.issue,
            enabled=access.enabled,
            skipped_reason=access.reason,
            branch=ws.branch if ws else None,
        )

    def integration_input(self, human_todo: list[str]) -> GithubPhaseInput | None:
        """What the integration phase needs to push, open the pull request and tick the
        issue's checkboxes; None without an enabled handoff."""
        gh = self._github
        if gh is None or not self.enabled:
            return None
        interim = ExecutionReport.from_progress(
            self._progress, human_todo=human_todo, finished_at=None
        )
        return GithubPhaseInput(
            repo=gh.repo,
            issue=gh.issue,
            draft=gh.draft,
            force_push=gh.force_push,
            title=self._title(),
            body=pull_request_body(interim, self._request.ui_url),
            finished=[
                TaskRef(id=t.id, title=t.title, checkbox=gh.checkboxes.get(t.id))
                for t in self._progress.tasks
                if t.status == "passed"
            ],
        )

    def record_integration(self, result: GithubHandoffResult | None, branch: str) -> str | None:
        """What the integration phase handed off; a note for the human when they must hand
        off themselves (a human chose to skip the handoff), else None."""
        handoff = self._progress.handoff
        if handoff is None or result is None:
            return None
        if result.push is not None:
            handoff.pushed_head = result.push.head
        handoff.pull_request = result.pull_request
        if result.tick is not None:
            handoff.ticked = result.tick.ticked + result.tick.already_ticked
        if not result.skipped_reason:
            return None
        handoff.enabled = False
        handoff.skipped_reason = result.skipped_reason
        if result.aborted:
            return None
        return (
            f"Push {branch} and open its pull request yourself: the GitHub handoff was "
            "skipped (see Handoff)."
        )

    def review_input(self, github: GithubPhaseInput | None) -> GithubPhaseInput | None:
        """The integration phase's GitHub input, now with the pull request to review on;
        None when there is none."""
        handoff = self._progress.handoff
        if github is None or handoff is None or handoff.pull_request is None:
            return None
        github.pull_request = handoff.pull_request
        github.pushed_head = handoff.pushed_head
        github.body = ""  # the review does not need it
        return github

    def record_review(self, review: ReviewResult) -> None:
        handoff = self._progress.handoff
        if handoff is None:
            return
        if review.pushed_head:
            handoff.pushed_head = review.pushed_head
        handoff.review_event = review.review_event

    async def finish(self, report: ExecutionReport) -> None:
        """Push what the last phases added, and make the final report the pull request's
        body. Failures are reported, never raised."""
        handoff = self._progress.handoff
        ws = self._progress.workspace
        gh = self._github
        if handoff is None or not handoff.enabled or not handoff.pull_request or not ws or not gh:
            return
        if handoff.pushed_head and ws.head_commit != handoff.pushed_head:
            pushed = await quietly(
                self._progress,
                "final push failed",
                steps.github_push(
                    ws,
                    PushRequest(
                        execution_id=report.execution_id,
                        repo=gh.repo,
                        workspace=ws.path,
                        branch=ws.branch,
                        force=gh.force_push,
                    ),
                ),
                report=report,
            )
            if pushed is not None:
                handoff.pushed_head = pushed.head
        await quietly(
            self._progress,
            "pull request body not updated",
            steps.github_pull_request(
                PullRequestRequest(
                    execution_id=report.execution_id,
                    repo=gh.repo,
                    branch=ws.branch,
                    base=ws.base_branch,
                    title=self._title(),
                    body=pull_request_body(report, self._request.ui_url),
                    draft=gh.draft,
                )
            ),
            report=report,
        )

    def _title(self) -> str:
        assert self._github is not None
        return self._github.title or f"coord: {self._request.plan.name}"
