"""What every phase shares: telling the execution how things stand, asking a human (after
three strikes: workflows/until_resolved.py) and waiting durably for the answer, the budget,
and merging into the execution branch (an attempt in a worktree: workflows/attempts.py).
Workflow code: deterministic, no I/O."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ChildWorkflowError,
    FailureError,
)
from temporalio.exceptions import CancelledError as TemporalCancelledError

with workflow.unsafe.imports_passed_through():
    from coordinator.branches import (
        LandRequest,
        LandResult,
        MergeRequest,
        MergeResult,
    )
    from coordinator.claude import AttemptSpend
    from coordinator.escalation import Action, Escalation, Resolution
    from coordinator.execution import (
        ExecutionInput,
        PhaseInput,
        SpecialistRef,
    )
    from coordinator.progress import PlanTickRequest
    from coordinator.report import GateSummary, Spend, TaskState
    from coordinator.work import GateResult
    from workflows import steps
    from workflows.landings import Landings

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

# Task updates to the execution are sent at most this often, several in one signal: a
# 1,000-task plan would otherwise cost the execution's history a signal per transition.
UPDATE_EVERY = timedelta(seconds=2)
UPDATE_EVERY_MAX = timedelta(minutes=1)
# The flusher of task updates stops when asked instead of being cancelled mid-signal, and a
# phase's last updates travel in its result.
FLUSHER_PATCH = "flusher-stops-cooperatively"


class PhaseWorkflow:
    """Base of the phase child workflows."""

    def __init__(self) -> None:
        self._answers: dict[str, Resolution] = {}
        self._escalations = 0
        # One merge into the execution branch at a time, and no merge while gates run there.
        self.branch_lock = asyncio.Lock()
        # Tasks landing in one step (commit, merge, push, removal) do not take the lock:
        # their merges take turns on the worker. Gates and fixes wait until they are done.
        self.landings = Landings()
        # Claude spending in this phase (USD), the budget as raised by a human, and one
        # budget question at a time however many tasks run into the limit together.
        self.phase_spent = 0.0
        self._raised_budget: float | None = None
        self._budget_lock = asyncio.Lock()
        self._reserved = 0.0  # promised to Claude attempts still running (USD)
        self.budget_aborted = False

        self._outbox: dict[str, TaskState] = {}
        self._outbox_versions: dict[str, int] = {}  # bumped per update: what a flush sent
        # Whether task updates are coalesced: the execution says so in PhaseInput (it must
        # understand TASKS_UPDATE); set by the phases that send them (`use_coalescing`).
        self._coalesce = False
        self._flusher: asyncio.Task[None] | None = None
        self._updates_since: datetime | None = None
        # Set to stop the flusher: it finishes a signal in flight, then returns. Cancelling
        # it instead (code from before FLUSHER_PATCH) could fail or hang the phase.
        self._flusher_stopping = False
        self._flusher_cooperative = False

    @workflow.signal(name=ESCALATION_ANSWERED)
    def escalation_answered(self, answer: Resolution) -> None:
        if answer.escalation_id is not None:
            self._answers[answer.escalation_id] = answer

    async def _tell_execution(self, signal: str, arg: object) -> None:
        parent = workflow.info().parent
        if parent is not None:  # a phase run on its own (tests) has no one to tell
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(signal, arg)

    def use_coalescing(self, request: PhaseInput, since: datetime | None = None) -> None:
        self._coalesce = request.coalesce_updates
        self._updates_since = since or workflow.now()

    async def notify_task(self, state: TaskState) -> None:
        if not self._coalesce:  # an execution from before coalescing: one signal each
            await self._tell_execution(TASK_UPDATE, state)
            return
        self._outbox[state.id] = state  # the latest state of each task is what counts
        self._outbox_versions[state.id] = self._outbox_versions.get(state.id, 0) + 1
        if self._flusher is None and not (self._flusher_stopping and self._flusher_cooperative):
            self._flusher_cooperative = workflow.patched(FLUSHER_PATCH)
            self._flusher = asyncio.create_task(self._flush_periodically())

    def update_interval(self) -> timedelta:
        """Every 2 s at first, then less often as the phase runs on (1 % of its age, at most
        a minute): the execution's history grows with the log of the phase's length, not
        with its number of task transitions."""
        since = self._updates_since or workflow.now()
        age = workflow.now() - since
        return max(UPDATE_EVERY, min(UPDATE_EVERY_MAX, age / 100))

    async def _flush_periodically(self) -> None:
        if not self._flusher_cooperative:  # executions from before FLUSHER_PATCH replay this
            while True:
                await workflow.wait_condition(lambda: bool(self._outbox))
                await workflow.sleep(self.update_interval())
                await self.flush_updates()
        while not self._flusher_stopping:
            await workflow.wait_condition(lambda: bool(self._outbox) or self._flusher_stopping)
            if self._flusher_stopping:
                return
            with contextlib.suppress(TimeoutError):  # the interval passed: time to send
                await workflow.wait_condition(
                    lambda: self._flusher_stopping, timeout=self.update_interval()
                )
            if self._flusher_stopping:
                return  # what is left goes with the phase's end, not from here
            await self.flush_updates()

    async def flush_updates(self) -> None:
        """Send the task updates gathered so far: before a human is asked, before the phase
        ends (or continues as new), and every `update_interval()` in between. An update is
        dropped from the outbox only once its signal went out: a flush cut short (the
        flusher cancelled at the end of the phase) leaves it for the next one."""
        if not self._outbox:
            return
        sent = dict(self._outbox_versions)
        states = [s.model_copy() for s in self._outbox.values()]
        await self._tell_execution(TASKS_UPDATE, states)
        for tid, version in sent.items():
            if self._outbox_versions.get(tid) == version and tid in self._outbox:
                del self._outbox[tid]

    async def stop_flusher(self) -> None:
        """The flusher stops for good. It is never cancelled in the middle of a signal: it
        finishes the signal in flight (so the phase cannot fail with "Signal was cancelled
        before being sent", nor wait forever on a flusher whose cancel the SDK swallowed
        once the signal had gone out), then returns."""
        self._flusher_stopping = True
        if self._flusher is None:
            return
        if self._flusher_cooperative:
            await self._flusher
        else:  # code from before FLUSHER_PATCH, kept for the executions it started
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, TemporalCancelledError):
                await self._flusher
        self._flusher = None

    async def stop_updates(self) -> None:
        """The phase is ending (or continuing as new): the flusher stops, then whatever it
        had not sent goes out."""
        await self.stop_flusher()
        await self.flush_updates()

    def unsent_updates(self) -> list[TaskState]:
        """The task states no signal has carried yet: a phase that ends returns them in its
        result (no last signal racing the phase's end)."""
        states = [s.model_copy() for s in self._outbox.values()]
        self._outbox.clear()
        return states

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
        """What is neither spent nor promised to an attempt still running."""
        budget = self.budget(request)
        if budget is None:
            return None
        return max(0.0, budget - self.spent(request) - self._reserved)

    def reserve(self, limit: float | None) -> float | None:
        """Promise `limit` to an attempt (its max_cost_usd): parallel attempts share what is
        left instead of each being allowed all of it."""
        if limit is not None:
            self._reserved += limit
        return limit

    def release(self, limit: float | None) -> None:
        if limit is not None:
            self._reserved = max(0.0, self._reserved - limit)

    async def record_spend(self, scope: str, spend: AttemptSpend | None) -> None:
        """Spending outside a task (a fixer's round, the reviewer) goes to the execution."""
        if spend is None:
            return
        self.phase_spent += spend.cost_usd or 0.0
        if spend.tokens:  # command specialists spend nothing: no signal, histories unchanged
            await self._tell_execution(
                SPEND, Spend(scope=scope, tokens=spend.tokens, cost_usd=spend.cost_usd)
            )

    async def _reservations_shrink(self) -> None:
        promised = self._reserved
        await workflow.wait_condition(lambda: self._reserved < promised)

    async def within_budget(self, request: PhaseInput, phase: str) -> bool:
        """Before a Claude call: True to go on; when the execution's budget is spent, ask a
        human once (retry with a raised budget, or abort) and wait. False: aborted."""
        async with self._budget_lock:
            while not self.budget_aborted:
                budget, spent = self.budget(request), self.spent(request)
                if budget is None or spent + self._reserved < budget:
                    return True
                if self._reserved > 0:
                    # What is left is promised to attempts still running: see what they
                    # spend before asking anyone.
                    await self._reservations_shrink()
                    continue
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
        self,
        request: PhaseInput,
        branch: str,
        item_id: str,
        title: str,
        tick: PlanTickRequest | None = None,
    ) -> MergeResult:
        """Land a task's (or a fix's) one commit on the execution branch, one at a time;
        with `tick`, the same commit ticks the task in its plan file."""
        ws = request.workspace
        async with self.branch_lock:
            await self.landings.drained()
            merged = await steps.merge(
                ws,
                MergeRequest(
                    workspace=ws.path,
                    execution_branch=ws.branch,
                    task_branch=branch,
                    task_id=item_id,
                    title=title,
                    tick=tick,
                ),
            )
        if merged.merged:
            ws.head_commit = merged.head
            # Before the task counts as done: its commit survives the loss of this host.
            await steps.publish(ws, merged.head)
        return merged

    async def land(self, request: PhaseInput, landing: LandRequest) -> LandResult:
        """A task's commit, merge, push and worktree removal as one step, beside other
        tasks' landings (workflows/landings.py)."""
        ws = request.workspace
        await self.landings.begin(self.branch_lock)
        merged = None
        try:
            landed = await steps.land(ws, landing)
            merged = landed.merged
        finally:
            self.landings.end(ws, merged)
        return landed

    def fixer(self, request: PhaseInput, default: str | None = None) -> SpecialistRef:
        name = request.plan.fixer or default or "fixer"
        return request.specialists.get(name) or SpecialistRef(name=name, backend="claude")


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
