"""IntegrationPhase: the execution branch is final (one commit per task, plus fix commits);
record its head and what changed. With a GitHub handoff: push the branch, open (or find and
update) the pull request, tick the issue's boxes of finished tasks. A handoff that fails after
its retries asks a human: retry once the cause is fixed, skip (the handoff stays local), or
abort."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from coordinator.branches import DiffRequest
    from coordinator.escalation import Action, Escalation, Resolution
    from coordinator.execution import IntegrationResult, PhaseInput
    from coordinator.handoff import (
        GithubHandoffResult,
        GithubPhaseInput,
        PullRequestRequest,
        PushRequest,
        TickRequest,
    )
    from workflows import steps
    from workflows.phase import PhaseWorkflow, root_message
    from workflows.until_resolved import ATTEMPTS, Done, Miss, Retry, UntilResolved, retry_or


@workflow.defn(name="IntegrationPhase")
class IntegrationPhaseWorkflow(PhaseWorkflow):
    @workflow.run
    async def run(self, request: PhaseInput) -> IntegrationResult:
        ws = request.workspace
        summary = await steps.diff(
            ws,
            DiffRequest(
                workspace=ws.path, base_commit=ws.base_commit, execution_id=request.execution_id
            ),
        )
        result = IntegrationResult(head=summary.head, diff=summary)
        if request.github is not None:
            result.github = await self._hand_off(request, request.github)
        return result

    async def _hand_off(self, request: PhaseInput, gh: GithubPhaseInput) -> GithubHandoffResult:
        """The activities' own retries are the three strikes: each failure asks a human."""
        problems: list[str] = []

        async def attempt(strike: int) -> Done[GithubHandoffResult] | Miss:
            try:
                return Done(await self._github_steps(request, gh))
            except ActivityError as err:
                if is_cancelled_exception(err):
                    raise
                problems.append(root_message(err))
                return Miss.STRIKE

        async def ask() -> Retry | Done[GithubHandoffResult]:
            answer = await self.escalate(request, _handoff_escalation(gh, problems[-1]))
            return retry_or(answer, lambda answer: _given_up(answer, problems[-1]))

        return await UntilResolved[GithubHandoffResult](strikes=1).run(attempt, ask)

    async def _github_steps(self, request: PhaseInput, gh: GithubPhaseInput) -> GithubHandoffResult:
        """Each step finds what an earlier run of it did: a retry repeats nothing."""
        ws = request.workspace
        push = await steps.github_push(
            ws,
            PushRequest(
                execution_id=request.execution_id,
                repo=gh.repo,
                workspace=ws.path,
                branch=ws.branch,
                force=gh.force_push,
            ),
        )
        pull_request = await steps.github_pull_request(
            PullRequestRequest(
                execution_id=request.execution_id,
                repo=gh.repo,
                branch=ws.branch,
                base=ws.base_branch,
                title=gh.title,
                body=gh.body,
                draft=gh.draft,
            )
        )
        tick = None
        if gh.issue is not None and gh.finished:
            tick = await steps.github_tick(
                TickRequest(repo=gh.repo, issue=gh.issue, tasks=gh.finished)
            )
        return GithubHandoffResult(push=push, pull_request=pull_request, tick=tick)


def _handoff_escalation(gh: GithubPhaseInput, problem: str) -> Escalation:
    return Escalation(
        id="integration:github",
        phase="integration",
        reason=f"the GitHub handoff to {gh.repo} failed",
        question="The GitHub handoff failed: fix the cause, then retry; skip to keep the "
        "handoff local (the branch stays in the workspace); or abort?",
        last_error=problem,
        attempts=ATTEMPTS,
        recommended=[
            "Fix what the last error names (the worker's GITHUB_TOKEN, its "
            "permissions, the repository, the remote branch), then retry",
            "Skip to push and open the pull request yourself",
        ],
    )


def _given_up(answer: Resolution, problem: str) -> GithubHandoffResult:
    why = f"a human chose to {answer.action.value} after: {problem}"
    return GithubHandoffResult(skipped_reason=why, aborted=answer.action == Action.ABORT)
