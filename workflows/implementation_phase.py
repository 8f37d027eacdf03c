"""ImplementationPhase: the DAG scheduler.

A task starts as soon as its dependencies have passed, at most `max_parallel` at once. Each
task works in its own git worktree cut from the execution branch as it stands when the task
starts: specialist → task gates → commit → merge. A failure (specialist, gate or merge
conflict) goes to the fixer with the feedback; after three failed attempts the task
escalates and waits for a human while independent tasks keep running. After every task of a
layer is done, the layer gates run on the execution branch.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from coordinator.attempts import AttemptFailure, feedback_for
    from coordinator.backends import spends_tokens
    from coordinator.branches import (
        CommitRequest,
        CreateWorktreeRequest,
        PendingWorkRequest,
        RemoveWorktreeRequest,
    )
    from coordinator.claude import AttemptSpend
    from coordinator.conflicts import markers_left
    from coordinator.dag import TaskGraph, layer_order
    from coordinator.escalation import Action, Escalation, Resolution
    from coordinator.execution import (
        ImplementationResult,
        ParkedTask,
        PhaseInput,
        SchedulerCarry,
        SpecialistRef,
    )
    from coordinator.plan import Task
    from coordinator.report import GateSummary, TaskState
    from coordinator.work import SpecialistRequest
    from workflows import steps
    from workflows.gate_loop import run_gates_with_fixes
    from workflows.phase import (
        ATTEMPTS,
        FEEDBACK_CHARS,
        PhaseWorkflow,
        failed_spend,
        failing_output,
        first_line,
        root_message,
        spend_of,
    )
    from workflows.task_board import plan_task_states

FINISHED = ("passed", "skipped", "failed")
# Continue as new past this many events even if the server has not suggested it yet (it
# warns at 10,240): a run never gets near the warning, whatever the server's settings.
# (Changing these changes when running executions hand over: that is a workflow change.)
CONTINUE_AS_NEW_EVENTS = 6000
HISTORY_WARNING = 10_240
DRAIN_EVENTS_PER_TASK = 130  # three attempts with gates, merge and cleanup, and a margin
MIN_RUN_EVENTS = 100
# A task's commit refused for conflict markers left in its files is a failed attempt.
MARKERS_PATCH = "conflict-markers-refuse-commit"


@workflow.defn(name="ImplementationPhase")
class ImplementationPhaseWorkflow(PhaseWorkflow):
    def __init__(self) -> None:
        super().__init__()
        self._abort = False
        self._changes = 0  # bumped on every task update; the scheduler waits on it
        self._seen = 0
        self._states: dict[str, TaskState] = {}
        # Task budgets as a human raised them (USD), and extra token allowances granted.
        self._task_cost_limit: dict[str, float] = {}
        self._task_token_limit: dict[str, int] = {}
        self._task_budget_hit: dict[str, tuple[str, float | None]] = {}
        # Tasks waiting on a human (an escalation, or a slot after "retry"): what a
        # continue-as-new carries over so that the next run resumes their waits.
        self._parked: dict[str, ParkedTask] = {}
        # Every failed attempt of each task's current round: its feedback and escalation.
        self._failures: dict[str, list[AttemptFailure]] = {}
        self._handing_over = False
        self._runs = 0

    @workflow.run
    async def run(self, request: PhaseInput) -> ImplementationResult:
        plan = request.plan
        carried, request.carry = request.carry, None
        self.use_coalescing(request, carried.updates_since if carried else None)
        graph = TaskGraph.from_tasks(plan.tasks)
        # This phase owns task state; the execution shows it (a read model, task_board.py).
        self._states = {s.id: s for s in plan_task_states(plan.tasks, request.routes)}
        layers = {name: set(ids) for name, ids in layer_order(plan.tasks).items()}
        gated_layers: set[str] = set()
        running: dict[str, asyncio.Task[None]] = {}
        if carried is not None:
            gated_layers = set(carried.gated_layers)
            self._restore(carried)
            for parked in carried.parked:  # tasks waiting on a human carry on waiting
                waiting_task = plan.task(parked.task_id)
                running[waiting_task.id] = asyncio.create_task(
                    self._run_task(request, waiting_task, parked)
                )
        draining = False
        try:
            while not self._abort:
                await self._skip_blocked(request, graph)
                draining = draining or self._history_is_long(plan.max_parallel)
                # A task waiting on a human holds no slot: other work keeps going. While
                # draining for a continue-as-new, no task gets a slot.
                slots = 0 if draining else max(0, plan.max_parallel - self._busy())
                # Tasks a human sent back (retry) first, then new ones.
                waiting = [tid for tid in running if self._states[tid].status == "ready"]
                for tid in waiting[:slots]:
                    self._states[tid].status = "running"
                slots -= min(slots, len(waiting))
                for tid in self._startable(request, graph, running)[:slots]:
                    self._states[tid].status = "running"
                    running[tid] = asyncio.create_task(self._run_task(request, plan.task(tid)))
                unfinished = any(s.status not in FINISHED for s in self._states.values())
                if draining and unfinished and all(tid in self._parked for tid in running):
                    await self._continue_as_new(request, running, gated_layers)
                if not running:
                    break
                self._seen = self._changes
                await workflow.wait_condition(
                    lambda: (
                        self._abort
                        or self._changes != self._seen
                        or any(t.done() for t in running.values())
                    )
                )
                for tid in [tid for tid, t in running.items() if t.done()]:
                    running.pop(tid).result()  # a bug in _run_task surfaces here
                for layer, ids in layers.items():
                    if layer in gated_layers or not plan.layer_gates:
                        continue
                    if all(self._states[tid].status in FINISHED for tid in ids):
                        gated_layers.add(layer)
                        outcome = await run_gates_with_fixes(
                            self,
                            request,
                            level="layer",
                            scope=layer,
                            gates=plan.layer_gates,
                            phase_name="implementation",
                        )
                        self._abort = self._abort or outcome.aborted
            if running:  # aborted: unfinished work is left for a human, not merged
                for task in running.values():
                    task.cancel()
                await asyncio.gather(*running.values(), return_exceptions=True)
        except BaseException as err:
            if isinstance(err, workflow.ContinueAsNewError):
                raise
            # Cancelled (directly or wrapped by the activity it interrupted) or broken: stop
            # every task and leave no worktree behind, then let it propagate.
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)
            await self.stop_updates()
            await self._clean_up(request)
            raise
        last: list[TaskState] = []
        if self._flusher_cooperative:
            await self.stop_flusher()
            last = self.unsent_updates()  # they travel in the result: no last signal
        else:
            await self.stop_updates()
        await self._clean_up(request)
        return ImplementationResult(
            # With coalesced updates the execution already has every task's state but the
            # last ones (`updates`): a 1,000-task list would only weigh down both histories.
            tasks=[] if self._coalesce else list(self._states.values()),
            updates=last,
            aborted=self._abort,
            head=request.workspace.head_commit,
        )

    # --- continue-as-new ------------------------------------------------------------------

    def _history_is_long(self, max_parallel: int) -> bool:
        """Time to hand over to a fresh run: the server suggests it, or the history passed a
        mark that leaves room for the running tasks to finish (each may take up to about
        DRAIN_EVENTS_PER_TASK more events) under Temporal's 10,240-event warning. A run that
        has hardly begun never hands over (no loop of empty runs when the server suggests
        it at once). `patched` is asked only when it is time: an execution from before this
        change that gets here live hands over too, which its parent handles."""
        info = workflow.info()
        length = info.get_current_history_length()
        if length < MIN_RUN_EVENTS:
            return False
        mark = max(MIN_RUN_EVENTS, HISTORY_WARNING - max_parallel * DRAIN_EVENTS_PER_TASK)
        long = info.is_continue_as_new_suggested() or length > min(CONTINUE_AS_NEW_EVENTS, mark)
        return long and workflow.patched("scheduler-continue-as-new")

    async def _continue_as_new(
        self,
        request: PhaseInput,
        running: dict[str, asyncio.Task[None]],
        gated_layers: set[str],
    ) -> None:
        """Every running task is parked on a human (or there are none): carry the state
        over to a new run of this workflow, which picks the waits up where they are."""
        self._handing_over = True
        for task in running.values():
            task.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)
        await self.stop_updates()
        # Built last: an answer that came in while the tasks stopped is carried too.
        carry = SchedulerCarry(
            # What the plan says of each task (title, layer, dependencies) is not repeated.
            states=[
                s.model_copy(update={"title": "", "depends_on": [], "layer": None})
                for s in self._states.values()
                if s.status != "pending" or s.attempts
            ],
            parked=list(self._parked.values()),
            task_cost_limit=self._task_cost_limit,
            task_token_limit=self._task_token_limit,
            # Only the answers a parked task may still be waiting for.
            answers={
                eid: answer
                for eid, answer in self._answers.items()
                if any(p.escalation and p.escalation.id == eid for p in self._parked.values())
            },
            escalations=self._escalations,
            phase_spent=self.phase_spent,
            raised_budget=self._raised_budget,
            gated_layers=sorted(gated_layers),
            runs=self._runs + 1,
            updates_since=self._updates_since,
        )
        workflow.continue_as_new(request.model_copy(update={"carry": carry}))

    def _restore(self, carried: SchedulerCarry) -> None:
        for saved in carried.states:
            fresh = self._states[saved.id]
            self._states[saved.id] = saved.model_copy(
                update={"title": fresh.title, "depends_on": fresh.depends_on, "layer": fresh.layer}
            )
        self._task_cost_limit = dict(carried.task_cost_limit)
        self._task_token_limit = dict(carried.task_token_limit)
        # An answer may arrive with the new run's very first task, before this runs.
        self._answers = {**carried.answers, **self._answers}
        self._escalations = carried.escalations
        self.phase_spent = carried.phase_spent
        self._raised_budget = carried.raised_budget
        self._runs = carried.runs

    def _busy(self) -> int:
        """Tasks holding a slot; one waiting on a human does not."""
        return sum(s.status in ("running", "fixing") for s in self._states.values())

    def _startable(
        self, request: PhaseInput, graph: TaskGraph, running: dict[str, asyncio.Task[None]]
    ) -> list[str]:
        passed = {tid for tid, s in self._states.items() if s.status == "passed"}
        started = set(running) | {tid for tid, s in self._states.items() if s.status != "pending"}
        ready = graph.ready(passed, started)
        if request.plan.on_skip == "escalate":
            # Tasks whose dependencies finished without passing start too: they ask first.
            ready += [
                tid
                for tid in graph.order
                if tid not in started
                and tid not in ready
                and all(self._states[d].status in FINISHED for d in graph.dependencies(tid))
            ]
        return ready

    async def notify_task(self, state: TaskState) -> None:
        self._changes += 1  # wakes the scheduler: a slot may have freed up
        await super().notify_task(state)

    async def _clean_up(self, request: PhaseInput) -> None:
        ws = request.workspace
        result = await steps.clean_up(
            ws,
            PendingWorkRequest(
                workspace=ws.path, execution_id=request.execution_id, execution_branch=ws.branch
            ),
        )
        ws.head_commit = result.head

    async def _skip_blocked(self, request: PhaseInput, graph: TaskGraph) -> None:
        """Dependants of a skipped or failed task cannot run: skip them, or let each ask."""
        for tid, state in self._states.items():
            if state.status != "pending":
                continue
            blockers = [
                dep
                for dep in graph.dependencies(tid)
                if self._states[dep].status in ("skipped", "failed")
            ]
            if not blockers:
                continue
            if request.plan.on_skip == "skip_dependants":
                state.status = "skipped"
                state.last_error = f"skipped: depends on {', '.join(blockers)}, which did not pass"
                state.finished_at = workflow.now()
                await self.notify_task(state)

    async def _run_task(
        self, request: PhaseInput, task: Task, parked: ParkedTask | None = None
    ) -> None:
        state = self._states[task.id]
        state.started_at = state.started_at or workflow.now()
        blockers = [d for d in state.depends_on if self._states[d].status != "passed"]
        guidance = ""
        fresh = False
        try:
            if parked is not None:  # carried over a continue-as-new: resume the wait
                self._park(parked)
                if parked.escalation is not None:
                    answer = await self._answered(
                        request,
                        state,
                        await self.wait_for_answer(request, parked.escalation),
                        resolution=parked.budget_resolution,
                    )
                else:
                    answer = await self._slot(
                        state, parked.guidance, keep_work=parked.budget_resolution
                    )
                if answer is None:
                    return
                guidance, fresh = answer, not parked.budget_resolution
            elif blockers:  # on_skip: escalate
                answer = await self._ask(
                    request,
                    state,
                    reason=f"its dependencies {', '.join(blockers)} did not pass",
                    question=f"Task {task.id} depends on {', '.join(blockers)}, which were "
                    "skipped: run it anyway (retry), skip it, or abort?",
                    output_tail="",
                )
                if answer is None:
                    return
                guidance, fresh = answer, True
            while True:
                try:
                    error, tail = await self._attempts(request, task, state, guidance, fresh)
                except steps.HostLost:
                    # Its worktree went with a lost worker: the interrupted attempt again on
                    # the new host, from the branch (not counted: the task did not fail).
                    state.attempts -= 1
                    fresh = True
                    continue
                except ActivityError as err:
                    if is_cancelled_exception(err):
                        raise
                    # A git step or a gate that failed all its activity attempts: no fix
                    # loop can help, a human decides (the execution does not fail).
                    error, tail = root_message(err), ""
                    state.last_error = error
                    self._failures.setdefault(task.id, []).append(
                        AttemptFailure.of(state.attempts, error)
                    )
                if error is None:
                    return
                if self._abort:  # a human stopped the execution at its budget question
                    state.status = "failed"
                    state.finished_at = workflow.now()
                    await self.notify_task(state)
                    return
                budget_question = task.id in self._task_budget_hit
                if budget_question:
                    answer = await self._ask_budget(request, task, state)
                else:
                    answer = await self._ask(
                        request,
                        state,
                        reason=f"{ATTEMPTS} attempts failed",
                        question=f"Task {task.id} ({task.title}) still fails after {ATTEMPTS} "
                        "attempts: retry with guidance, skip it, or abort the execution?",
                        output_tail=tail,
                        last_error=error,
                    )
                if answer is None:
                    return
                # A raised budget goes on with the work as it stands; a retry after failures
                # starts again from the branch.
                guidance, fresh = answer, not budget_question
        except BaseException as err:
            if not is_cancelled_exception(err) or self._handing_over:
                raise  # a continue-as-new carries the state as it is
            if state.status not in FINISHED:
                state.status = "pending" if state.attempts == 0 else "failed"
                state.last_error = state.last_error or "stopped before it finished"
            raise

    async def _ask_budget(self, request: PhaseInput, task: Task, state: TaskState) -> str | None:
        """The task's own budget is spent: a human raises it (or grants more tokens) or not."""
        reason, limit = self._task_budget_hit.pop(task.id)
        answer = await self._ask(
            request,
            state,
            reason=reason,
            question=f"Task {task.id} ({task.title}) reached its budget ({reason}): retry "
            "with a raised budget (--budget USD; for a token limit, retrying grants another "
            "max_tokens), skip it, or abort?",
            output_tail="",
            last_error=reason,
            budget=(limit, state.cost_usd or 0.0) if limit is not None else None,
            resolution=True,
        )
        return answer

    async def _ask(
        self,
        request: PhaseInput,
        state: TaskState,
        *,
        reason: str,
        question: str,
        output_tail: str,
        last_error: str = "",
        budget: tuple[float, float] | None = None,
        resolution: bool = False,
    ) -> str | None:
        """Escalate; return the guidance on retry, None when the task is skipped or aborted."""
        state.status = "escalated"
        await self.notify_task(state)
        done = [t for t, s in self._states.items() if s.status == "passed"]
        escalation = await self.raise_escalation(
            Escalation(
                id=state.id,
                phase="implementation",
                task_id=state.id,
                reason=reason,
                question=question,
                last_error=last_error or state.last_error,
                output_tail=output_tail[-4000:],
                attempts=state.attempts,
                failures=list(self._failures.get(state.id, [])),
                completed=done,
                remaining=[t for t, s in self._states.items() if s.status not in FINISHED],
                artifacts=[g.log_path for g in state.gates if not g.passed and g.log_path],
                recommended=[
                    "Read the last error and the gate logs listed under artifacts",
                    "Retry with guidance that says what the specialist is missing",
                    "--skip if the task is not needed; --abort to stop and keep what is done",
                ],
                budget_usd=budget[0] if budget else None,
                spent_usd=budget[1] if budget else None,
            ),
        )
        self._park(
            ParkedTask(task_id=state.id, escalation=escalation, budget_resolution=resolution)
        )
        answer = await self.wait_for_answer(request, escalation)
        return await self._answered(request, state, answer, resolution=resolution)

    async def _answered(
        self, request: PhaseInput, state: TaskState, answer: Resolution, *, resolution: bool
    ) -> str | None:
        """Act on a human's answer: the guidance on retry, None when skipped or aborted."""
        if answer.action == Action.RETRY and resolution:
            if answer.budget is not None:
                self._task_cost_limit[state.id] = answer.budget
            task = request.plan.task(state.id)
            if task.max_tokens is not None:
                self._task_token_limit[state.id] = state.tokens + task.max_tokens
        if answer.action == Action.RETRY:
            # Back in the queue: only the scheduler hands out slots, so max_parallel holds.
            state.status = "ready"
            return await self._slot(state, answer.guidance, keep_work=resolution)
        self._parked.pop(state.id, None)
        state.status = "skipped" if answer.action == Action.SKIP else "failed"
        state.finished_at = workflow.now()
        if answer.action == Action.ABORT:
            self._abort = True
        await self.notify_task(state)
        return None

    def _park(self, parked: ParkedTask) -> None:
        self._parked[parked.task_id] = parked
        self._changes += 1  # a draining scheduler may now hand over

    async def _slot(self, state: TaskState, guidance: str, *, keep_work: bool = False) -> str:
        """Wait (parked, so a continue-as-new may carry it) until the scheduler gives the
        task a slot again; then it runs with the guidance."""
        self._park(ParkedTask(task_id=state.id, guidance=guidance, budget_resolution=keep_work))
        if state.status != "running":  # a restored task may have its slot already
            state.status = "ready"
            await self.notify_task(state)
            await workflow.wait_condition(lambda: state.status == "running")
        self._parked.pop(state.id, None)
        await self.notify_task(state)
        return guidance

    async def _attempts(
        self, request: PhaseInput, task: Task, state: TaskState, guidance: str, fresh: bool
    ) -> tuple[str | None, str]:
        """Up to three attempts; (None, "") when the task passed, else (error, output tail)."""
        ws = request.workspace
        failures = self._failures[task.id] = []
        note = ""  # what the next attempt needs to know besides the failures
        error, tail = "", ""
        attempt = 0
        while attempt < ATTEMPTS:
            attempt += 1
            specialist = self._specialist(request, task, fixing=attempt > 1)
            if spends_tokens(specialist.backend) and (
                stop := await self._budget_stop(request, task, state)
            ):
                return stop, ""
            state.attempts += 1
            state.status = "running" if attempt == 1 else "fixing"
            await self.notify_task(state)
            worktree = await steps.create_worktree(
                ws,
                CreateWorktreeRequest(
                    execution_id=request.execution_id,
                    workspace=ws.path,
                    execution_branch=ws.branch,
                    task_id=task.id,
                    attempt=state.attempts,
                    fresh=fresh and attempt == 1,
                ),
            )
            await self.set_up_worktree(request, worktree.path, task.id)
            if worktree.replayed:
                note = _replayed(worktree.conflict_files, worktree.conflict)
            feedback, note = feedback_for(failures, note, limit=FEEDBACK_CHARS), ""
            limit = self.reserve(self._attempt_cost_limit(request, task, state))
            try:
                result = await steps.run_specialist(
                    ws,
                    specialist,
                    SpecialistRequest(
                        execution_id=request.execution_id,
                        task_id=task.id,
                        task_title=task.title,
                        task_prompt=task.prompt,
                        files=task.files,
                        specialist=specialist.name,
                        backend=specialist.backend,
                        command=specialist.command,
                        timeout_s=specialist.timeout_s,
                        cwd=worktree.path,
                        attempt=state.attempts,
                        feedback=feedback[-FEEDBACK_CHARS:],
                        guidance=guidance if attempt == 1 else "",
                        context_paths=request.context_paths,
                        environment=request.environment,
                        max_cost_usd=limit,
                        max_tokens=self._attempt_token_limit(task, state),
                    ),
                    summary=f"{'fix' if attempt > 1 else 'implement'} {task.id} "
                    f"({specialist.name})",
                    plan=request.plan,
                )
            except ActivityError as err:
                self.release(limit)
                if is_cancelled_exception(err):
                    raise asyncio.CancelledError from err
                # What it spent before it failed for good is spent all the same.
                self._add_spend(state, failed_spend(err))
                # The specialist failed on all of its activity attempts (or on one that cannot
                # be retried): trying the same thing again is pointless, a human decides.
                error = f"specialist {specialist.name} failed: {root_message(err)}"
                self._failed(state, failures, error)
                return error, ""
            self.release(limit)
            self._add_spend(state, spend_of(result))
            if result.agent is not None and result.agent.stop_reason == "budget":
                # The money ran out, not the specialist's skill: ask about the budget, and
                # go on with the same attempt in the same worktree once it is raised.
                note = (
                    f"The previous attempt stopped when its budget ran out ({result.summary}). "
                    "The budget was raised: carry on from where it stopped; the worktree "
                    f"keeps its changes.\n{result.output_tail}"
                )
                if stop := await self._budget_stop(request, task, state):
                    return stop, ""
                attempt -= 1  # not a failed attempt
                fresh = False
                continue
            if not result.ok:
                error, tail = result.summary, result.output_tail
                self._failed(state, failures, error, tail)
                continue
            gates = [
                await steps.run_gate(
                    ws,
                    request.execution_id,
                    "task",
                    task.id,
                    gate,
                    worktree.path,
                    state.attempts,
                    request.environment,
                )
                for gate in task.gates
            ]
            state.gates = [GateSummary.of(g) for g in gates]
            failing = [g for g in gates if not g.passed]
            if failing:
                tail = failing_output(gates)
                error = f"gate {failing[0].name} failed: {first_line(failing[0].output_tail)}"
                self._failed(state, failures, error, tail)
                continue
            committed = await steps.commit(
                ws,
                CommitRequest(
                    worktree=worktree.path,
                    task_id=task.id,
                    title=task.title,
                    attempt=state.attempts,
                ),
            )
            if committed.unresolved and workflow.patched(MARKERS_PATCH):
                error, tail = markers_left(committed.unresolved, committed.conflicting_with), ""
                self._failed(state, failures, error)
                continue
            source = request.plan.source
            tick = source.request_for(task.id) if source is not None else None
            merged = await self.merge_into_branch(
                request, worktree.branch, task.id, task.title, tick=tick
            )
            if not merged.merged:
                conflict = merged.conflict or ""
                error = "merge conflict: " + conflict.strip().partition("\n")[0]
                tail = conflict
                self._failed(state, failures, error, conflict)
                continue
            # Merged is done, whatever happens next (the worktree is also swept at the end).
            state.status = "passed"
            state.commit = merged.commit
            state.plan_tick = merged.tick_note
            state.last_error = ""
            state.finished_at = workflow.now()
            self._failures.pop(task.id, None)
            await self.notify_task(state)
            await steps.remove_worktree(
                ws,
                RemoveWorktreeRequest(
                    workspace=ws.path,
                    execution_id=request.execution_id,
                    task_id=task.id,
                    delete_branch=True,
                ),
            )
            return None, ""
        return error, tail

    def _failed(
        self, state: TaskState, failures: list[AttemptFailure], error: str, detail: str = ""
    ) -> None:
        """An attempt failed: the task says why, and the next attempts and the escalation
        keep it with the earlier failures."""
        state.last_error = error
        failures.append(AttemptFailure.of(state.attempts, error, detail))

    async def _budget_stop(self, request: PhaseInput, task: Task, state: TaskState) -> str | None:
        """Before a Claude attempt: None to go on, else why the task stops here (its own
        budget is spent: it asks; the execution's budget question was answered abort)."""
        if over := self._task_over_budget(task, state):
            self._task_budget_hit[task.id] = over
            state.last_error = over[0]
            return over[0]
        if not await self.within_budget(request, "implementation"):
            self._abort = True
            state.last_error = "stopped: the execution's budget is spent"
            return state.last_error
        return None

    def _add_spend(self, state: TaskState, spend: AttemptSpend | None) -> None:
        if spend is None:
            return
        state.tokens += spend.tokens
        if spend.cost_usd is not None:
            state.cost_usd = (state.cost_usd or 0.0) + spend.cost_usd
        self.phase_spent += spend.cost_usd or 0.0

    def _task_over_budget(self, task: Task, state: TaskState) -> tuple[str, float | None] | None:
        """(why, the cost limit) when the task has spent what it may, else None."""
        cost_limit = self._task_cost_limit.get(task.id, task.max_cost)
        spent = state.cost_usd or 0.0
        if cost_limit is not None and spent >= cost_limit:
            return f"task budget reached: ${spent:.2f} of ${cost_limit:.2f}", cost_limit
        token_limit = self._task_token_limit.get(task.id, task.max_tokens)
        if token_limit is not None and state.tokens >= token_limit:
            return f"task token budget reached: {state.tokens} of {token_limit} tokens", None
        return None

    def _attempt_cost_limit(
        self, request: PhaseInput, task: Task, state: TaskState
    ) -> float | None:
        limits = [self.budget_left(request)]
        cost_limit = self._task_cost_limit.get(task.id, task.max_cost)
        if cost_limit is not None:
            limits.append(max(0.0, cost_limit - (state.cost_usd or 0.0)))
        known = [limit for limit in limits if limit is not None]
        return min(known) if known else None

    def _attempt_token_limit(self, task: Task, state: TaskState) -> int | None:
        token_limit = self._task_token_limit.get(task.id, task.max_tokens)
        return None if token_limit is None else max(0, token_limit - state.tokens)

    def _specialist(self, request: PhaseInput, task: Task, *, fixing: bool) -> SpecialistRef:
        own = request.routes.get(task.id) or task.specialist or "implementer"
        if fixing:
            return self.fixer(request, default=own)
        return request.specialists.get(own) or SpecialistRef(name=own, backend="claude")


def _replayed(files: list[str], conflict: str | None) -> str:
    """What a fixer is told when its worktree holds a conflict replayed by the git step."""
    return (
        "The execution branch moved: your change was replayed onto it, with git's conflict "
        f"markers where it clashes, in {', '.join(files)}. Resolve every conflict there: the "
        "commit is refused while any `<<<<<<<`, `=======` or `>>>>>>>` line the merge left "
        "is still in those files.\n" + (conflict or "")
    )
