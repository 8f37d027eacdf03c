"""ReviewPhase: the reviewer reads the diff from the base branch and gives a verdict;
"changes requested" goes to the fixer, then the system gates, then review again (at most
three rounds, then a human decides). With a pull request open, the branch is pushed again
when the review's fixes moved it, and the verdict is posted as a review of the pull request."""

from __future__ import annotations

from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from coordinator.backends import spends_tokens
    from coordinator.branches import FIX_PREFIX, DiffRequest
    from coordinator.escalation import Action, Escalation
    from coordinator.execution import PhaseInput, ReviewResult
    from coordinator.handoff import GithubPhaseInput, PushRequest, ReviewRequest
    from coordinator.work import SpecialistRequest, SpecialistResult
    from workflows import steps
    from workflows.attempts import WorktreeAttempt, fix_in_worktree
    from workflows.gate_loop import GateLoop
    from workflows.phase import PhaseWorkflow, first_line, root_message
    from workflows.until_resolved import ATTEMPTS, Done, Miss, Retry, UntilResolved, retry_or

ReviewVerdict = Literal["approve", "changes_requested", "skipped"]

REVIEW_WORKTREE = "coord-review"  # the `coord-` prefix is reserved: no task can clash

REVIEW_PROMPT = (
    "Review the changes of this branch against its base (the patch is in COORD_CONTEXT): "
    "correctness, security, performance, tests, idioms. Approve, or request changes with "
    "findings as file:line: what to change."
)


@workflow.defn(name="ReviewPhase")
class ReviewPhaseWorkflow(PhaseWorkflow):
    @workflow.run
    async def run(self, request: PhaseInput) -> ReviewResult:
        result = await self._review(request)
        gh = request.github
        if gh is not None and gh.pull_request is not None:
            await self._post_review(request, gh, result)
        return result

    async def _post_review(
        self, request: PhaseInput, gh: GithubPhaseInput, result: ReviewResult
    ) -> None:
        """Push the review's fixes, then post the verdict. A failure here is reported, not
        escalated: the work is done and the pull request exists."""
        assert gh.pull_request is not None
        ws = request.workspace
        try:
            if result.head != gh.pushed_head:
                pushed = await steps.github_push(
                    ws,
                    PushRequest(
                        execution_id=request.execution_id,
                        repo=gh.repo,
                        workspace=ws.path,
                        branch=ws.branch,
                        force=gh.force_push,
                    ),
                )
                result.pushed_head = pushed.head
            posted = await steps.github_review(
                ReviewRequest(
                    repo=gh.repo,
                    number=gh.pull_request.number,
                    execution_id=request.execution_id,
                    verdict=result.verdict,
                    body=review_body(request, result),
                )
            )
            result.review_event = posted.event
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            result.problems.append(f"GitHub review not posted: {root_message(err)}")

    async def _review(self, request: PhaseInput) -> ReviewResult:
        return await ReviewLoop(self, request).run()


class ReviewLoop:
    """A review round is an attempt: the reviewer's verdict, and for "changes requested" (but
    in the last round) the fixer, then the system gates. Three rounds, then a human."""

    def __init__(self, phase: PhaseWorkflow, request: PhaseInput) -> None:
        self.phase, self.request = phase, request
        self.reviewer = request.specialists[request.plan.reviewer or "code-reviewer"]
        self.rounds = 0  # reviews run, over every round
        self.findings = ""
        self.until = UntilResolved[ReviewResult]()

    async def run(self) -> ReviewResult:
        return await self.until.run(self._attempt, self._ask)

    def _result(self, verdict: ReviewVerdict, *, aborted: bool = False) -> ReviewResult:
        return ReviewResult(
            verdict=verdict,
            findings="" if verdict == "approve" else self.findings,
            rounds=self.rounds,
            aborted=aborted,
            head=self.request.workspace.head_commit,
        )

    async def _attempt(self, review_round: int) -> Done[ReviewResult] | Miss:
        phase, request = self.phase, self.request
        if spends_tokens(self.reviewer.backend) and not await phase.within_budget(
            request, "review"
        ):
            return Done(
                self._result("changes_requested" if self.findings else "skipped", aborted=True)
            )
        self.rounds += 1
        verdict, failure = await self._verdict()
        if verdict is not None and verdict.ok:
            return Done(self._result("approve"))
        # No verdict at all (a failure, the turn limit, stuck, the budget, or an answer
        # without one): nothing for a fixer to act on.
        if verdict is None:
            self.findings = failure
            return Miss.STRIKE
        agent = verdict.agent
        if agent is not None and (agent.finish is None or agent.finish.verdict is None):
            self.findings = f"the reviewer gave no verdict: {verdict.summary}"
            return Miss.STRIKE
        self.findings = verdict.output_tail or verdict.summary
        if review_round == ATTEMPTS:
            return Miss.STRIKE
        return await self._fix(review_round)

    async def _verdict(self) -> tuple[SpecialistResult | None, str]:
        """The reviewer's verdict on the diff, in a worktree of its own; (None, why) when
        the reviewer failed for good (a bad key, an overloaded API): a round without a
        verdict, and after three of them a human decides."""
        phase, request, reviewer, rounds = self.phase, self.request, self.reviewer, self.rounds
        ws = request.workspace
        diff = await steps.diff(
            ws,
            DiffRequest(
                workspace=ws.path, base_commit=ws.base_commit, execution_id=request.execution_id
            ),
        )
        review = WorktreeAttempt(phase, request, REVIEW_WORKTREE)
        worktree = await review.open()
        limit = review.reserve_share(reviewer)
        try:
            await review.set_up()
            verdict = await review.run(
                reviewer,
                SpecialistRequest(
                    execution_id=request.execution_id,
                    task_id=REVIEW_WORKTREE,
                    task_title=f"Review {request.plan.name}",
                    task_prompt=REVIEW_PROMPT,
                    files=diff.files,
                    specialist=reviewer.name,
                    backend=reviewer.backend,
                    command=reviewer.command,
                    timeout_s=reviewer.timeout_s,
                    cwd=worktree.path,
                    attempt=rounds,
                    # The patch first: the reviewer's prompt says so.
                    context_paths=[diff.diff_path, *request.context_paths],
                    environment=request.environment,
                    role="review",
                    max_cost_usd=limit,
                ),
                summary=f"review round {rounds} ({reviewer.name})",
                record=lambda spend: phase.record_spend(f"review round {rounds}", spend),
            )
            return verdict, ""
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            return None, f"the reviewer failed: {root_message(err)}"
        finally:
            await review.close()

    async def _fix(self, review_round: int) -> Done[ReviewResult] | Miss:
        """The fixer addresses the findings, then the system gates run (with their fixes)."""
        phase, request = self.phase, self.request
        problem = await fix_in_worktree(
            phase,
            request,
            fix_id=f"{FIX_PREFIX}review-{self.rounds}",
            title=f"Address review findings (round {self.rounds})",
            prompt="The reviewer requested changes. Address every finding with the "
            "smallest correct change.",
            feedback=self.findings,
            guidance=self.until.take_guidance(),
            attempt=review_round,
        )
        if phase.budget_aborted:
            return Done(self._result("changes_requested", aborted=True))
        if problem is None and request.plan.gates:
            gates = await GateLoop(
                phase,
                request,
                level="system",
                scope="system",
                gates=request.plan.gates,
                phase_name="review",
            ).run()
            if gates.aborted:
                return Done(self._result("changes_requested", aborted=True))
        return Miss.STRIKE

    async def _ask(self) -> Retry | Done[ReviewResult]:
        answer = await self.phase.escalate(
            self.request,
            Escalation(
                id="review:changes",
                phase="review",
                reason=f"the reviewer still requests changes after {ATTEMPTS} rounds",
                question="The review keeps requesting changes: retry with guidance for the "
                "fixer, skip (accept the branch as it is), or abort?",
                last_error=first_line(self.findings),
                output_tail=self.findings[-4000:],
                attempts=ATTEMPTS,
                recommended=[
                    "Read the findings; retry with guidance on how to address them",
                    "Skip if the findings are wrong",
                ],
            ),
        )
        return retry_or(
            answer,
            lambda answer: self._result("changes_requested", aborted=answer.action == Action.ABORT),
        )


def review_body(request: PhaseInput, result: ReviewResult) -> str:
    reviewer = request.plan.reviewer or "code-reviewer"
    verdict = "approves" if result.verdict == "approve" else "requests changes"
    lines = [f"**coord review**: `{reviewer}` {verdict} after {result.rounds} round(s)."]
    if result.verdict != "approve" and result.findings:
        fence = "````"
        lines += ["", "Findings still open:", "", fence, result.findings[-8000:], fence]
    if result.aborted:
        lines += ["", "A human aborted the execution with these findings open."]
    return "\n".join(lines)
