"""An attempt in a worktree: the one sequence every specialist's turn goes through.

A worktree of the execution branch is made (`open`), set up (`setup_per_worktree`), a share
of the budget is promised to the attempt (`reserve`), the specialist runs in it (`run`: the
promise is released and what it spent recorded, also when it failed for good) and the
worktree is removed (`remove`, or `close` for the fixer and the reviewer, whose worktrees
never outlive their round). Tasks (workflows/implementation_phase.py), the fixer of gates and
review (`fix_in_worktree` here) and the reviewer (workflows/review_phase.py) all use it.
Workflow code: deterministic, no I/O."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from coordinator.backends import spends_tokens
    from coordinator.branches import (
        FIX_PREFIX,
        CommitRequest,
        CreateWorktreeRequest,
        RemoveWorktreeRequest,
        TaskWorktree,
        worktree_beside,
    )
    from coordinator.claude import AttemptSpend
    from coordinator.execution import PhaseInput, SpecialistRef, WorktreeSetupRequest
    from coordinator.nested_repositories import nested_left
    from coordinator.work import SpecialistRequest, SpecialistResult
    from workflows import steps
    from workflows.spend import failed_spend, spend_of

if TYPE_CHECKING:
    from workflows.phase import PhaseWorkflow

FEEDBACK_CHARS = 8000
# A commit refused because the worktree holds a git repository of its own is a failed attempt
# (code from before this merged the commit that was not made: nothing).
NESTED_PATCH = "nested-repository-refuses-commit"
# A fixer's worktree whose setup failed gives its budget share back (code from before this
# kept it promised for the rest of the phase).
SETUP_FAILURE_RELEASES = "fix-setup-failure-releases-budget"
# A task's worktree is made by its specialist's activity where nothing comes between the two
# (activities/worktree_prepare.py): one round trip less per task.
MADE_BY_SPECIALIST = "worktree-made-by-the-specialist"

Record = Callable[[AttemptSpend | None], Awaitable[None]]


class WorktreeAttempt:
    """One specialist attempt in the worktree of `item_id` (a task, a fix, the review)."""

    def __init__(self, phase: PhaseWorkflow, request: PhaseInput, item_id: str) -> None:
        self.phase, self.request, self.item_id = phase, request, item_id
        self._worktree: TaskWorktree | None = None
        self._limit: float | None = None  # promised and not yet released
        # Asked of the specialist's activity instead of `open` (`open_in_specialist`).
        self._making: CreateWorktreeRequest | None = None

    @property
    def worktree(self) -> TaskWorktree:
        assert self._worktree is not None, "open() the attempt first"
        return self._worktree

    @property
    def opened(self) -> bool:
        """The worktree is made (by `open`, or by the specialist's activity)."""
        return self._worktree is not None

    @property
    def cwd(self) -> str:
        """Where the specialist works: the worktree, or where its activity will make it."""
        if self._worktree is not None:
            return self._worktree.path
        assert self._making is not None, "open() the attempt first"
        return worktree_beside(self.request.workspace.path, self.item_id)

    def _create_request(self, attempt: int, fresh: bool) -> CreateWorktreeRequest:
        ws = self.request.workspace
        return CreateWorktreeRequest(
            execution_id=self.request.execution_id,
            workspace=ws.path,
            execution_branch=ws.branch,
            task_id=self.item_id,
            attempt=attempt,
            fresh=fresh,
        )

    async def open(self, *, attempt: int = 1, fresh: bool = True) -> TaskWorktree:
        """A worktree of the execution branch as it stands (a fresh one), or the task's
        worktree of its earlier attempts."""
        ws = self.request.workspace
        self._worktree = await steps.create_worktree(ws, self._create_request(attempt, fresh))
        return self._worktree

    def open_in_specialist(self, *, attempt: int, fresh: bool) -> bool:
        """Leave making the worktree to the specialist's activity (`run`), where nothing
        comes between the two: no per-worktree setup, and a first attempt or a fresh start
        (a later one may hold a replayed conflict the specialist must be told of first).
        False: `open` it."""
        plan = self.request.plan
        if (plan.setup and plan.setup_per_worktree) or not (attempt == 1 or fresh):
            return False
        if not workflow.patched(MADE_BY_SPECIALIST):
            return False
        self._making = self._create_request(attempt, fresh)
        return True

    async def set_up(self) -> None:
        """`setup_per_worktree`: the setup commands again in a new worktree (a reused one
        keeps its environment; the activity knows)."""
        request, plan = self.request, self.request.plan
        if plan.setup and plan.setup_per_worktree:
            await steps.setup_worktree(
                request.workspace,
                WorktreeSetupRequest(
                    execution_id=request.execution_id,
                    worktree=self.worktree.path,
                    scope=self.item_id,
                    commands=plan.setup,
                    environment=request.environment,
                ),
            )

    def reserve(self, limit: float | None) -> float | None:
        """Promise `limit` (USD) to this attempt: its max_cost_usd."""
        self._limit = self.phase.reserve(limit)
        return self._limit

    def reserve_share(self, ref: SpecialistRef) -> float | None:
        """A fixer's or reviewer's attempt: what is left of the execution's budget (Claude
        only; command specialists spend nothing)."""
        return (
            self.reserve(self.phase.budget_left(self.request))
            if spends_tokens(ref.backend)
            else None
        )

    def release(self) -> None:
        self.phase.release(self._limit)
        self._limit = None

    def keep_promised(self) -> None:
        """What was promised stays promised, for the rest of the phase (the code of
        executions started before SETUP_FAILURE_RELEASES)."""
        self._limit = None

    async def run(
        self, ref: SpecialistRef, request: SpecialistRequest, *, summary: str, record: Record
    ) -> SpecialistResult:
        """The specialist in the worktree; what it spent is recorded, also what an attempt
        that failed for good had spent (an ActivityError, raised again)."""
        if self._making is not None and self._worktree is None:
            request = request.model_copy(update={"worktree": self._making})
        try:
            result = await steps.run_specialist(
                self.request.workspace, ref, request, summary=summary, plan=self.request.plan
            )
        except ActivityError as err:
            await record(failed_spend(err))
            self.release()
            raise
        if result.worktree is not None:
            self._worktree, self._making = result.worktree, None
        self.release()
        await record(spend_of(result))
        return result

    async def remove(self) -> None:
        await steps.remove_worktree(
            self.request.workspace,
            RemoveWorktreeRequest(
                workspace=self.request.workspace.path,
                execution_id=self.request.execution_id,
                task_id=self.item_id,
                delete_branch=True,
            ),
        )

    async def close(self) -> None:
        """The round is over, however it ended: nothing stays promised, the worktree goes."""
        if self._limit is not None:
            self.release()
        await self.remove()


async def fix_in_worktree(
    phase: PhaseWorkflow,
    request: PhaseInput,
    *,
    fix_id: str,
    title: str,
    prompt: str,
    feedback: str,
    guidance: str,
    attempt: int,
) -> str | None:
    """The fixer works on the execution branch in a worktree of its own; its change is
    committed and merged like a task's. Returns None on success, else what went wrong."""
    fixer = phase.fixer(request)
    if spends_tokens(fixer.backend) and not await phase.within_budget(request, phase_of(fix_id)):
        return "aborted: the budget is spent"
    fix = WorktreeAttempt(phase, request, fix_id)
    worktree = await fix.open()
    limit = fix.reserve_share(fixer)
    try:
        await _set_up_fix(fix)
        result = await fix.run(
            fixer,
            SpecialistRequest(
                execution_id=request.execution_id,
                task_id=fix_id,
                task_title=title,
                task_prompt=prompt,
                specialist=fixer.name,
                backend=fixer.backend,
                command=fixer.command,
                timeout_s=fixer.timeout_s,
                cwd=worktree.path,
                attempt=attempt,
                feedback=feedback[-FEEDBACK_CHARS:],
                guidance=guidance,
                context_paths=request.context_paths,
                environment=request.environment,
                role="fix",
                max_cost_usd=limit,
            ),
            summary=f"fix: {title} ({fixer.name})",
            record=lambda spend: phase.record_spend(fix_id, spend),
        )
        if not result.ok:
            return f"fixer {fixer.name}: {result.summary}"
        return await _land(phase, request, fix, fixer, title)
    except ActivityError as err:
        if is_cancelled_exception(err):
            raise
        # The fixer (or a git step) crashed on every attempt: a failed fix round; the gate
        # loop escalates after the last one instead of failing the execution.
        return f"fix round failed: {err.cause or err}"
    except steps.HostLost as lost:
        # The fix was on a worker that is gone: the gates run again on the new host.
        return f"fix round lost: {lost.message}"
    finally:
        await fix.close()


async def _set_up_fix(fix: WorktreeAttempt) -> None:
    try:
        await fix.set_up()
    except BaseException:
        if not workflow.patched(SETUP_FAILURE_RELEASES):
            fix.keep_promised()
        raise


async def _land(
    phase: PhaseWorkflow,
    request: PhaseInput,
    fix: WorktreeAttempt,
    fixer: SpecialistRef,
    title: str,
) -> str | None:
    """The fix's one commit onto the execution branch; None when it merged."""
    committed = await steps.commit(
        request.workspace,
        CommitRequest(worktree=fix.worktree.path, task_id=fix.item_id, title=title, attempt=1),
    )
    if committed.nested and workflow.patched(NESTED_PATCH):
        return f"fixer {fixer.name}: {nested_left(committed.nested)}"
    if committed.no_changes:
        return f"fixer {fixer.name} changed nothing"
    merged = await phase.merge_into_branch(request, fix.worktree.branch, fix.item_id, title)
    return None if merged.merged else f"the fix did not merge: {merged.conflict}"


def phase_of(fix_id: str) -> str:
    """The escalation scope of a fix round: 'coord-fix-<phase>-...' -> '<phase>'."""
    return fix_id.removeprefix(FIX_PREFIX).split("-", 1)[0]
