"""ImplementationPhase: the DAG scheduler.

A task starts as soon as its dependencies have passed, at most `max_parallel` at once. Each
task works in its own git worktree cut from the execution branch as it stands when the task
starts (workflows/task_run.py: its attempts, escalations and budget). After every task of a
layer is done, the layer gates run on the execution branch. A long history hands over to a
new run (continue-as-new) once every running task waits on a human.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from coordinator.branches import PendingWorkRequest
    from coordinator.dag import TaskGraph, layer_order
    from coordinator.execution import ImplementationResult, PhaseInput, SchedulerCarry
    from coordinator.report import TaskState
    from workflows import steps
    from workflows.gate_loop import GateLoop
    from workflows.task_board import plan_task_states
    from workflows.task_run import FINISHED, TaskWork

# Continue as new past this many events even if the server has not suggested it yet (it
# warns at 10,240): a run never gets near the warning, whatever the server's settings.
# (Changing these changes when running executions hand over: that is a workflow change.)
CONTINUE_AS_NEW_EVENTS = 6000
HISTORY_WARNING = 10_240
DRAIN_EVENTS_PER_TASK = 130  # three attempts with gates, merge and cleanup, and a margin
MIN_RUN_EVENTS = 100


@workflow.defn(name="ImplementationPhase")
class ImplementationPhaseWorkflow(TaskWork):
    def __init__(self) -> None:
        super().__init__()
        self._seen = 0
        self._runs = 0

    @workflow.run
    async def run(self, request: PhaseInput) -> ImplementationResult:
        plan = request.plan
        carried, request.carry = request.carry, None
        self.use_coalescing(request, carried.updates_since if carried else None)
        graph = TaskGraph.from_tasks(plan.tasks)
        # This phase owns task state; the execution shows it (a read model, task_board.py).
        self._states = {s.id: s for s in plan_task_states(plan.tasks, request.routes)}
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
        try:
            await self._schedule(request, graph, running, gated_layers)
        except BaseException as err:
            if isinstance(err, workflow.ContinueAsNewError):
                raise
            # Cancelled (directly or wrapped by the activity it interrupted) or broken: stop
            # every task and leave no worktree behind, then let it propagate.
            await _stop(running)
            await self.stop_updates()
            await self._clean_up(request)
            raise
        return await self._finish(request)

    async def _schedule(
        self,
        request: PhaseInput,
        graph: TaskGraph,
        running: dict[str, asyncio.Task[None]],
        gated_layers: set[str],
    ) -> None:
        """Hand out slots until every task is finished (or a human aborted), gating each
        layer once its tasks are done."""
        plan = request.plan
        layers = {name: set(ids) for name, ids in layer_order(plan.tasks).items()}
        draining = False
        while not self._abort:
            await self._skip_blocked(request, graph)
            draining = draining or self._history_is_long(plan.max_parallel)
            self._hand_out_slots(request, graph, running, draining)
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
            await self._gate_layers(request, layers, gated_layers)
        if running:  # aborted: unfinished work is left for a human, not merged
            await _stop(running)

    def _hand_out_slots(
        self,
        request: PhaseInput,
        graph: TaskGraph,
        running: dict[str, asyncio.Task[None]],
        draining: bool,
    ) -> None:
        """A task waiting on a human holds no slot: other work keeps going. While draining
        for a continue-as-new, no task gets a slot. Tasks a human sent back (retry) first,
        then new ones."""
        plan = request.plan
        slots = 0 if draining else max(0, plan.max_parallel - self._busy())
        waiting = [tid for tid in running if self._states[tid].status == "ready"]
        for tid in waiting[:slots]:
            self._states[tid].status = "running"
        slots -= min(slots, len(waiting))
        for tid in self._startable(request, graph, running)[:slots]:
            self._states[tid].status = "running"
            running[tid] = asyncio.create_task(self._run_task(request, plan.task(tid)))

    async def _gate_layers(
        self, request: PhaseInput, layers: dict[str, set[str]], gated_layers: set[str]
    ) -> None:
        """The layer gates of every layer whose tasks are all finished, once each."""
        plan = request.plan
        for layer, ids in layers.items():
            if layer in gated_layers or not plan.layer_gates:
                continue
            if all(self._states[tid].status in FINISHED for tid in ids):
                gated_layers.add(layer)
                outcome = await GateLoop(
                    self,
                    request,
                    level="layer",
                    scope=layer,
                    gates=plan.layer_gates,
                    phase_name="implementation",
                ).run()
                self._abort = self._abort or outcome.aborted

    async def _finish(self, request: PhaseInput) -> ImplementationResult:
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
        await _stop(running)
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
        if not any(s.status in ("skipped", "failed") for s in self._states.values()):
            return  # nothing to look for (this runs at each step: tasks x dependencies)
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


async def _stop(running: dict[str, asyncio.Task[None]]) -> None:
    for task in running.values():
        task.cancel()
    await asyncio.gather(*running.values(), return_exceptions=True)
