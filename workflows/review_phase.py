"""ReviewPhase: the reviewer reads the diff from the base branch and gives a verdict;
"changes requested" goes to the fixer, then the system gates, then review again (at most
three rounds, then a human decides). With a pull request open, the branch is pushed again
when the review's fixes moved it, and the verdict is posted as a review of the pull request."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from coordinator.backends import spends_tokens
    from coordinator.branches import DiffRequest, RemoveWorktreeRequest
    from coordinator.escalation import Action, Escalation
    from coordinator.execution import PhaseInput, ReviewResult
    from coordinator.handoff import GithubPhaseInput, PushRequest, ReviewRequest
    from coordinator.work import SpecialistRequest
    from workflows import steps
    from workflows.gate_loop import run_gates_with_fixes
    from workflows.phase import (
        ATTEMPTS,
        FIX_PREFIX,
        PhaseWorkflow,
        failed_spend,
        first_line,
        root_message,
        spend_of,
    )

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
        ws = request.workspace
        reviewer = request.specialists[request.plan.reviewer or "code-reviewer"]
        rounds = 0
        guidance = ""
        findings = ""
        while True:
            for review_round in range(1, ATTEMPTS + 1):
                if spends_tokens(reviewer.backend) and not await self.within_budget(
                    request, "review"
                ):
                    return ReviewResult(
                        verdict="changes_requested" if findings else "skipped",
                        findings=findings,
                        rounds=rounds,
                        aborted=True,
                        head=ws.head_commit,
                    )
                rounds += 1
                diff = await steps.diff(
                    ws,
                    DiffRequest(
                        workspace=ws.path,
                        base_commit=ws.base_commit,
                        execution_id=request.execution_id,
                    ),
                )
                worktree = await self.fresh_worktree(request, REVIEW_WORKTREE)
                limit = self.reserve_share(request, reviewer)
                failure = ""
                try:
                    await self.set_up_worktree(request, worktree.path, REVIEW_WORKTREE)
                    verdict = await steps.run_specialist(
                        ws,
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
                        plan=request.plan,
                    )
                    await self.record_spend(f"review round {rounds}", spend_of(verdict))
                except ActivityError as err:
                    if is_cancelled_exception(err):
                        raise
                    # The reviewer failed for good (a bad key, an overloaded API): a round
                    # without a verdict, and after three of them a human decides.
                    await self.record_spend(f"review round {rounds}", failed_spend(err))
                    failure = f"the reviewer failed: {root_message(err)}"
                finally:
                    self.release(limit)
                    await steps.remove_worktree(
                        ws,
                        RemoveWorktreeRequest(
                            workspace=ws.path,
                            execution_id=request.execution_id,
                            task_id=REVIEW_WORKTREE,
                            delete_branch=True,
                        ),
                    )
                if not failure and verdict.ok:
                    return ReviewResult(verdict="approve", rounds=rounds, head=ws.head_commit)
                agent = None if failure else verdict.agent
                if failure or (
                    agent is not None and (agent.finish is None or agent.finish.verdict is None)
                ):
                    # No verdict at all (a failure, the turn limit, stuck, the budget, or an
                    # answer without one): nothing for a fixer to act on.
                    findings = failure or f"the reviewer gave no verdict: {verdict.summary}"
                    if review_round == ATTEMPTS:
                        break
                    continue
                findings = verdict.output_tail or verdict.summary
                if review_round == ATTEMPTS:
                    break
                problem = await self.fix_in_worktree(
                    request,
                    fix_id=f"{FIX_PREFIX}review-{rounds}",
                    title=f"Address review findings (round {rounds})",
                    prompt="The reviewer requested changes. Address every finding with the "
                    "smallest correct change.",
                    feedback=findings,
                    guidance=guidance,
                    attempt=review_round,
                )
                guidance = ""
                if self.budget_aborted:
                    return ReviewResult(
                        verdict="changes_requested",
                        findings=findings,
                        rounds=rounds,
                        aborted=True,
                        head=ws.head_commit,
                    )
                if problem is None and request.plan.gates:
                    gates = await run_gates_with_fixes(
                        self,
                        request,
                        level="system",
                        scope="system",
                        gates=request.plan.gates,
                        phase_name="review",
                    )
                    if gates.aborted:
                        return ReviewResult(
                            verdict="changes_requested",
                            findings=findings,
                            rounds=rounds,
                            aborted=True,
                            head=ws.head_commit,
                        )
            answer = await self.escalate(
                request,
                Escalation(
                    id="review:changes",
                    phase="review",
                    reason=f"the reviewer still requests changes after {ATTEMPTS} rounds",
                    question="The review keeps requesting changes: retry with guidance for the "
                    "fixer, skip (accept the branch as it is), or abort?",
                    last_error=first_line(findings),
                    output_tail=findings[-4000:],
                    attempts=ATTEMPTS,
                    recommended=[
                        "Read the findings; retry with guidance on how to address them",
                        "Skip if the findings are wrong",
                    ],
                ),
            )
            if answer.action == Action.RETRY:
                guidance = answer.guidance
                continue
            return ReviewResult(
                verdict="changes_requested",
                findings=findings,
                rounds=rounds,
                aborted=answer.action == Action.ABORT,
                head=ws.head_commit,
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
