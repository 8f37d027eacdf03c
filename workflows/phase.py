"""What every phase after setup shares: telling the execution how things stand, asking a human
(the 3-strike escalation) and waiting durably for the answer, and the fixer's round trip
through a worktree. Workflow code: deterministic, no I/O."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ChildWorkflowError,
    FailureError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from coordinator.branches import (
        CommitRequest,
        CreateWorktreeRequest,
        MergeRequest,
        MergeResult,
        RemoveWorktreeRequest,
    )
    from coordinator.escalation import Action, Escalation, Resolution
    from coordinator.execution import (
        ExecutionInput,
        PhaseInput,
        SpecialistRef,
        WorktreeSetupRequest,
    )
    from coordinator.report import GateSummary, Spend, TaskState
    from coordinator.work import GateResult, SpecialistRequest, SpecialistResult
    from workflows import steps

# Signals between an execution and its phases (not for humans: they use the execution's).
TASK_UPDATE = "phase_task_update"
TASKS_UPDATE = "phase_tasks_update"  # several task states at once (coalesced)
GATE_UPDATE = "phase_gate_update"
ESCALATION_RAISED = "phase_escalation"
ESCALATION_CLOSED = "phase_escalation_closed"
ESCALATION_ANSWERED = "escalation_answered"
# The setup phase tells the workspace early to executions that keep a status file.
WORKSPACE_READY = "phase_workspace_ready"
SPEND = "phase_spend"

ATTEMPTS = 3  # three strikes, then a human
# Worktrees and commits of the coordinator's own fixes; task ids may not start with it, so a
# fix is never mistaken for a task (merges recognise a task's commit by its id).
FIX_PREFIX = "coord-fix-"
FEEDBACK_CHARS = 8000
# Task updates to the execution are sent at most this often, several in one signal: a
# 1,000-task plan would otherwise cost the execution's history a signal per transition.
UPDATE_EVERY = timedelta(seconds=2)


class PhaseWorkflow:
    """Base of the phase child workflows."""

    def __init__(self) -> None:
        self._answers: dict[str, Resolution] = {}
        self._escalations = 0
        # One merge into the execution branch at a time, and no merge while gates run there.
        self.branch_lock = asyncio.Lock()
        # Claude spending in this phase (USD), the budget as raised by a human, and one
        # budget question at a time however many tasks run into the limit together.
        self.phase_spent = 0.0
        self._raised_budget: float | None = None
        self._budget_lock = asyncio.Lock()
        self.budget_aborted = False

        self._outbox: dict[str, TaskState] = {}
        self._coalesce: bool | None = None  # decided on first use (a patch: see notify_task)
        self._flusher: asyncio.Task[None] | None = None

    @workflow.signal(name=ESCALATION_ANSWERED)
    def escalation_answered(self, answer: Resolution) -> None:
        if answer.escalation_id is not None:
            self._answers[answer.escalation_id] = answer

    async def _tell_execution(self, signal: str, arg: object) -> None:
        parent = workflow.info().parent
        if parent is not None:  # a phase run on its own (tests) has no one to tell
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(signal, arg)

    async def notify_task(self, state: TaskState) -> None:
        if self._coalesce is None:
            self._coalesce = workflow.patched("coalesced-task-updates")
        if not self._coalesce:  # executions started before coalescing: one signal each
            await self._tell_execution(TASK_UPDATE, state)
            return
        self._outbox[state.id] = state  # the latest state of each task is what counts
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_periodically())

    async def _flush_periodically(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self._outbox))
            await workflow.sleep(UPDATE_EVERY)
            await self.flush_updates()

    async def flush_updates(self) -> None:
        """Send the task updates gathered so far: before a human is asked, before the phase
        ends (or continues as new), and every UPDATE_EVERY in between."""
        if self._outbox:
            states = [s.model_copy() for s in self._outbox.values()]
            self._outbox.clear()
            await self._tell_execution(TASKS_UPDATE, states)

    async def stop_updates(self) -> None:
        """The phase is ending: the last updates go out, the flusher stops."""
        await self.flush_updates()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None

    async def notify_gates(self, results: list[GateResult]) -> None:
        for result in results:
            await self._tell_execution(GATE_UPDATE, GateSummary.of(result))

    async def escalate(
        self, request: PhaseInput | ExecutionInput, escalation: Escalation
    ) -> Resolution:
        """Ask a human and wait, durably, for the answer (or the plan's timeout)."""
        await self.raise_escalation(escalation)
        return await self.wait_for_answer(request, escalation)

    async def raise_escalation(self, escalation: Escalation) -> Escalation:
        await self.flush_updates()  # the execution sees the task as it stands first
        self._escalations += 1
        # Task ids cannot contain ':', so "<task>:n" and "<phase>:<scope>:n" never collide
        # across phases or with each other (and ':' needs no quoting in a shell).
        escalation.id = f"{escalation.id}:{self._escalations}"
        escalation.raised_at = workflow.now()
        escalation.waiting_workflow_id = workflow.info().workflow_id
        await self._tell_execution(ESCALATION_RAISED, escalation)
        return escalation

    async def wait_for_answer(
        self, request: PhaseInput | ExecutionInput, escalation: Escalation
    ) -> Resolution:
        """The human's answer, or the plan's on_escalation_timeout when none came in time
        (counted from when it was raised, also after a continue-as-new)."""
        plan = request.plan
        timeout = None
        if plan.escalation_timeout:
            raised = escalation.raised_at or workflow.now()
            timeout = timedelta(seconds=plan.escalation_timeout) - (workflow.now() - raised)
            timeout = max(timeout, timedelta(seconds=1))
        try:
            await workflow.wait_condition(lambda: escalation.id in self._answers, timeout=timeout)
        except TimeoutError:
            if escalation.id in self._answers:  # a human answered in the same instant
                return self._answers[escalation.id]
            answer = Resolution(
                escalation_id=escalation.id,
                action=Action(plan.on_escalation_timeout),
                by="escalation_timeout",
            )
            escalation.state = "timed_out"
            escalation.answer = answer
            escalation.answered_at = workflow.now()
            await self._tell_execution(ESCALATION_CLOSED, escalation)
            return answer
        return self._answers[escalation.id]

    # --- budget ---------------------------------------------------------------------------

    def budget(self, request: PhaseInput) -> float | None:
        return self._raised_budget if self._raised_budget is not None else request.budget_usd

    def spent(self, request: PhaseInput) -> float:
        return request.spent_usd + self.phase_spent

    def budget_left(self, request: PhaseInput) -> float | None:
        budget = self.budget(request)
        return None if budget is None else max(0.0, budget - self.spent(request))

    def count_spend(self, result: SpecialistResult) -> None:
        self.phase_spent += result.cost_usd or 0.0

    async def record_spend(self, scope: str, result: SpecialistResult) -> None:
        """Spending outside a task (a fixer's round, the reviewer) goes to the execution."""
        self.count_spend(result)
        tokens = result.tokens_in + result.tokens_out
        if tokens:  # command specialists spend nothing: no signal, histories unchanged
            await self._tell_execution(
                SPEND, Spend(scope=scope, tokens=tokens, cost_usd=result.cost_usd)
            )

    async def within_budget(self, request: PhaseInput, phase: str) -> bool:
        """Before a Claude call: True to go on; when the execution's budget is spent, ask a
        human once (retry with a raised budget, or abort) and wait. False: aborted."""
        async with self._budget_lock:
            while not self.budget_aborted:
                budget, spent = self.budget(request), self.spent(request)
                if budget is None or spent < budget:
                    return True
                answer = await self.escalate(
                    request,
                    Escalation(
                        id=f"{phase}:budget",
                        phase=phase,
                        reason=f"budget reached: ${spent:.2f} of ${budget:.2f}",
                        question=f"The execution has spent ${spent:.2f} of its ${budget:.2f} "
                        "budget: retry with a raised budget, or abort (everything done so "
                        "far is kept)?",
                        last_error=f"budget reached: ${spent:.2f} of ${budget:.2f}",
                        budget_usd=budget,
                        spent_usd=spent,
                        recommended=[
                            "Raise it: coord resolve <execution> <id> --retry --budget <USD>",
                            "--abort to stop here and keep what is done",
                        ],
                    ),
                )
                if answer.action == Action.RETRY and answer.budget is not None:
                    self._raised_budget = answer.budget
                elif answer.action != Action.RETRY:
                    self.budget_aborted = True
            return False

    async def merge_into_branch(
        self, request: PhaseInput, branch: str, item_id: str, title: str
    ) -> MergeResult:
        """Land a task's (or a fix's) one commit on the execution branch, one at a time."""
        ws = request.workspace
        async with self.branch_lock:
            merged = await steps.merge(
                ws,
                MergeRequest(
                    workspace=ws.path,
                    execution_branch=ws.branch,
                    task_branch=branch,
                    task_id=item_id,
                    title=title,
                ),
            )
        if merged.merged:
            ws.head_commit = merged.head
            # Before the task counts as done: its commit survives the loss of this host.
            await steps.publish(ws, merged.head)
        return merged

    async def set_up_worktree(self, request: PhaseInput, path: str, scope: str) -> None:
        """`setup_per_worktree`: the setup commands again in a new worktree (a reused one
        keeps its environment; the activity knows)."""
        plan = request.plan
        if plan.setup and plan.setup_per_worktree:
            await steps.setup_worktree(
                request.workspace,
                WorktreeSetupRequest(
                    execution_id=request.execution_id,
                    worktree=path,
                    scope=scope,
                    commands=plan.setup,
                    environment=request.environment,
                ),
            )

    def fixer(self, request: PhaseInput, default: str | None = None) -> SpecialistRef:
        name = request.plan.fixer or default or "fixer"
        return request.specialists.get(name) or SpecialistRef(name=name, backend="claude")

    async def fix_in_worktree(
        self,
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
        ws = request.workspace
        fixer = self.fixer(request)
        if fixer.backend == "claude" and not await self.within_budget(request, phase_of(fix_id)):
            return "aborted: the budget is spent"
        worktree = await steps.create_worktree(
            ws,
            CreateWorktreeRequest(
                execution_id=request.execution_id,
                workspace=ws.path,
                execution_branch=ws.branch,
                task_id=fix_id,
                attempt=1,
                fresh=True,
            ),
        )
        try:
            await self.set_up_worktree(request, worktree.path, fix_id)
            result = await steps.run_specialist(
                ws,
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
                    max_cost_usd=self.budget_left(request),
                ),
                summary=f"fix: {title} ({fixer.name})",
                plan=request.plan,
            )
            await self.record_spend(fix_id, result)
            if not result.ok:
                return f"fixer {fixer.name}: {result.summary}"
            committed = await steps.commit(
                ws, CommitRequest(worktree=worktree.path, task_id=fix_id, title=title, attempt=1)
            )
            if committed.no_changes:
                return f"fixer {fixer.name} changed nothing"
            merged = await self.merge_into_branch(request, worktree.branch, fix_id, title)
            return None if merged.merged else f"the fix did not merge: {merged.conflict}"
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            # The fixer (or a git step) crashed on every attempt: a failed fix round; the
            # gate loop escalates after the last one instead of failing the execution.
            return f"fix round failed: {err.cause or err}"
        except steps.HostLost as lost:
            # The fix was on a worker that is gone: the gates run again on the new host.
            return f"fix round lost: {lost.message}"
        finally:
            await steps.remove_worktree(
                ws,
                RemoveWorktreeRequest(
                    workspace=ws.path,
                    execution_id=request.execution_id,
                    task_id=fix_id,
                    delete_branch=True,
                ),
            )


def phase_of(fix_id: str) -> str:
    """The escalation scope of a fix round: 'coord-fix-<phase>-...' -> '<phase>'."""
    return fix_id.removeprefix(FIX_PREFIX).split("-", 1)[0]


def failing_output(results: list[GateResult]) -> str:
    """What the fixer gets: each failing gate's command and the tail of its output."""
    parts = []
    for r in results:
        if not r.passed:
            why = "timed out" if r.timed_out else f"exit code {r.exit_code}"
            parts.append(f"gate '{r.name}' failed ({why}):\n{r.output_tail}")
    return "\n\n".join(parts)


def root_message(err: BaseException) -> str:
    """The first error under the activity/child wrappers: it says what actually went wrong."""
    while isinstance(err, ActivityError | ChildWorkflowError) and err.__cause__ is not None:
        err = err.__cause__
    return err.message if isinstance(err, FailureError) else str(err)


def first_line(text: str, limit: int = 300) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "")[:limit]
