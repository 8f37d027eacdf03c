"""A task of the implementation phase, from its first attempt to passed, skipped or failed.

Each attempt works in the task's worktree (workflows/attempts.py): specialist → task gates →
commit → merge. A failure (specialist, gate or merge conflict) goes to the fixer with the
feedback; after three failed attempts the task escalates and waits for a human
(workflows/until_resolved.py) while independent tasks keep running. A task waiting on a human
is parked: a continue-as-new of the phase carries it over, and the next run resumes the wait.
`TaskWork` is the base of ImplementationPhaseWorkflow (workflows/implementation_phase.py),
which schedules the tasks. Workflow code: deterministic, no I/O."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from coordinator.attempts import AttemptFailure, feedback_for
    from coordinator.backends import spends_tokens
    from coordinator.branches import CommitRequest, LandRequest, LandResult, MergeResult
    from coordinator.claude import AttemptSpend
    from coordinator.conflicts import markers_left
    from coordinator.escalation import Action, Escalation, Resolution
    from coordinator.execution import ParkedTask, PhaseInput, SpecialistRef
    from coordinator.nested_repositories import nested_left
    from coordinator.plan import Task
    from coordinator.report import GateSummary, TaskState
    from coordinator.work import FollowThrough, SpecialistRequest, SpecialistResult
    from workflows import steps
    from workflows.attempts import FEEDBACK_CHARS, NESTED_PATCH, WorktreeAttempt
    from workflows.phase import failing_output, first_line, root_message
    from workflows.task_budget import TaskBudgets
    from workflows.task_round import TaskRound, replayed
    from workflows.task_turn import follow_through, merge_request
    from workflows.until_resolved import ATTEMPTS, Done, Miss, Retry

FINISHED = ("passed", "skipped", "failed")
# A task's commit refused for conflict markers left in its files is a failed attempt.
MARKERS_PATCH = "conflict-markers-refuse-commit"
# A task's commit, merge, push and worktree removal in one activity (before: four), landing
# beside other tasks' (workflows/landings.py).
LAND_PATCH = "task-lands-in-one-step"


class TaskWork(TaskBudgets):
    """The tasks' state and their way through attempts and escalations."""

    def __init__(self) -> None:
        super().__init__()
        self._changes = 0  # bumped on every task update; the scheduler waits on it
        self._states: dict[str, TaskState] = {}
        # Tasks waiting on a human (an escalation, or a slot after "retry"): what a
        # continue-as-new carries over so that the next run resumes their waits.
        self._parked: dict[str, ParkedTask] = {}
        # Every failed attempt of each task's current round: its feedback and escalation.
        self._failures: dict[str, list[AttemptFailure]] = {}
        self._handing_over = False

    async def notify_task(self, state: TaskState) -> None:
        self._changes += 1  # wakes the scheduler: a slot may have freed up
        await super().notify_task(state)

    async def _run_task(
        self, request: PhaseInput, task: Task, parked: ParkedTask | None = None
    ) -> None:
        state = self._states[task.id]
        state.started_at = state.started_at or workflow.now()
        try:
            opening = await self._before_attempts(request, task, state, parked)
            if opening is None:
                return
            run = TaskRound(task, state, *opening)
            self._failures[task.id] = run.failures
            await run.until.run(
                lambda strike: self._attempt(request, run, strike),
                lambda: self._after_attempts(request, run),
            )
        except BaseException as err:
            if not is_cancelled_exception(err) or self._handing_over:
                raise  # a continue-as-new carries the state as it is
            if state.status not in FINISHED:
                state.status = "pending" if state.attempts == 0 else "failed"
                state.last_error = state.last_error or "stopped before it finished"
            raise

    async def _before_attempts(
        self, request: PhaseInput, task: Task, state: TaskState, parked: ParkedTask | None
    ) -> tuple[str, bool] | None:
        """(guidance, fresh) for the first attempt; None when a human stopped the task."""
        blockers = [d for d in state.depends_on if self._states[d].status != "passed"]
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
            return None if answer is None else (answer, not parked.budget_resolution)
        if blockers:  # on_skip: escalate
            answer = await self._ask(
                request,
                state,
                reason=f"its dependencies {', '.join(blockers)} did not pass",
                question=f"Task {task.id} depends on {', '.join(blockers)}, which were "
                "skipped: run it anyway (retry), skip it, or abort?",
                output_tail="",
            )
            return None if answer is None else (answer, True)
        return "", False

    async def _after_attempts(self, request: PhaseInput, run: TaskRound) -> Retry | Done[None]:
        """Three strikes (or one no attempt can help): a human decides."""
        task, state = run.task, run.state
        if self._abort:  # a human stopped the execution at its budget question
            state.status = "failed"
            state.finished_at = workflow.now()
            await self.notify_task(state)
            return Done(None)
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
                output_tail=run.tail,
                last_error=run.error,
            )
        if answer is None:
            return Done(None)
        # A raised budget goes on with the work as it stands; a retry after failures
        # starts again from the branch.
        self._failures[task.id] = run.start_over(fresh=not budget_question)
        return Retry(answer)

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

    async def _attempt(self, request: PhaseInput, run: TaskRound, strike: int) -> Done[None] | Miss:
        task, state = run.task, run.state
        try:
            return await self._work_in_worktree(request, run, strike)
        except steps.HostLost:
            # Its worktree went with a lost worker: the interrupted attempt again on the new
            # host, from the branch (not counted: the task did not fail).
            state.attempts -= 1
            self._failures[task.id] = run.start_over(fresh=True)
            return Miss.START_OVER
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            # A git step or a gate that failed all its activity attempts: no fix loop can
            # help, a human decides (the execution does not fail).
            state.last_error = root_message(err)
            self._failures.setdefault(task.id, []).append(
                AttemptFailure.of(state.attempts, state.last_error)
            )
            return run.ask_now(state.last_error)

    async def _work_in_worktree(
        self, request: PhaseInput, run: TaskRound, strike: int
    ) -> Done[None] | Miss:
        """One attempt: the specialist (the fixer after the first), then `_land`."""
        task, state = run.task, run.state
        specialist = self._specialist(request, task, fixing=strike > 1)
        if spends_tokens(specialist.backend) and (
            stop := await self._budget_stop(request, task, state)
        ):
            return run.ask_now(stop)
        state.attempts += 1
        state.status = "running" if strike == 1 else "fixing"
        await self.notify_task(state)
        attempt = WorktreeAttempt(self, request, task.id)
        fresh = run.fresh and strike == 1
        if not attempt.open_in_specialist(attempt=state.attempts, fresh=fresh):
            worktree = await attempt.open(attempt=state.attempts, fresh=fresh)
            await attempt.set_up()
            if worktree.replayed:
                run.note = replayed(worktree.conflict_files, worktree.conflict)
        feedback, run.note = feedback_for(run.failures, run.note, limit=FEEDBACK_CHARS), ""
        base = attempt.worktree.base_commit if attempt.opened else None
        then = follow_through(self, request, task, base=base)
        try:
            result = await self._specialist_attempt(
                request, run, attempt, specialist, feedback, strike, then
            )
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise asyncio.CancelledError from err
            # The specialist failed on all of its activity attempts (or on one that cannot
            # be retried): trying the same thing again is pointless, a human decides.
            error = f"specialist {specialist.name} failed: {root_message(err)}"
            self._failed(state, run.failures, error)
            return run.ask_now(error)
        if result.agent is not None and result.agent.stop_reason == "budget":
            # The money ran out, not the specialist's skill: ask about the budget, and
            # go on with the same attempt in the same worktree once it is raised.
            run.note = (
                f"The previous attempt stopped when its budget ran out ({result.summary}). "
                "The budget was raised: carry on from where it stopped; the worktree "
                f"keeps its changes.\n{result.output_tail}"
            )
            if stop := await self._budget_stop(request, task, state):
                return run.ask_now(stop)
            run.fresh = False
            return Miss.NOT_A_STRIKE
        if not result.ok:
            return self._strike(run, result.summary, result.output_tail)
        return await self._land(request, run, attempt, result)

    async def _specialist_attempt(
        self,
        request: PhaseInput,
        run: TaskRound,
        attempt: WorktreeAttempt,
        specialist: SpecialistRef,
        feedback: str,
        strike: int,
        then: FollowThrough | None,
    ) -> SpecialistResult:
        """The specialist's activity; with `then.merge`, a landing in flight until it
        returns (workflows/landings.py)."""
        task, state = run.task, run.state
        limit = attempt.reserve(self._attempt_cost_limit(request, task, state))

        async def record(spend: AttemptSpend | None) -> None:
            self._add_spend(state, spend)

        sent = SpecialistRequest(
            execution_id=request.execution_id,
            task_id=task.id,
            task_title=task.title,
            task_prompt=task.prompt,
            files=task.files,
            specialist=specialist.name,
            backend=specialist.backend,
            command=specialist.command,
            timeout_s=specialist.timeout_s,
            cwd=attempt.cwd,
            attempt=state.attempts,
            feedback=feedback[-FEEDBACK_CHARS:],
            guidance=run.until.guidance if strike == 1 else "",
            context_paths=request.context_paths,
            environment=request.environment,
            max_cost_usd=limit,
            max_tokens=self._attempt_token_limit(task, state),
            then=then,
        )
        summary = f"{'fix' if strike > 1 else 'implement'} {task.id} ({specialist.name})"
        landing = then is not None and then.merge is not None
        if landing:
            await self.landings.begin(self.branch_lock)
        result = None
        try:
            result = await attempt.run(specialist, sent, summary=summary, record=record)
        finally:
            if landing:
                landed = result.landed if result is not None else None
                self.landings.end(request.workspace, landed.merged if landed else None)
        return result

    async def _land(
        self, request: PhaseInput, run: TaskRound, attempt: WorktreeAttempt, turn: SpecialistResult
    ) -> Done[None] | Miss:
        """The task gates in the worktree, then its one commit onto the execution branch
        (each unless the specialist's activity did it: `turn.gates`, `turn.landed`)."""
        ws, task, state, worktree = request.workspace, run.task, run.state, attempt.worktree
        gates = turn.gates
        if gates is None:
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
            error = f"gate {failing[0].name} failed: {first_line(failing[0].output_tail)}"
            return self._strike(run, error, failing_output(gates))
        landed = await self._commit_and_merge(request, run, attempt, turn.landed)
        if isinstance(landed, Miss):
            return landed
        merged, removed = landed
        # Merged is done, whatever happens next (the worktree is also swept at the end).
        state.status = "passed"
        state.commit = merged.commit
        state.plan_tick = merged.tick_note
        state.last_error = ""
        state.finished_at = workflow.now()
        self._failures.pop(task.id, None)
        await self.notify_task(state)
        if not removed:
            await attempt.remove()
        return Done(None)

    async def _commit_and_merge(
        self,
        request: PhaseInput,
        run: TaskRound,
        attempt: WorktreeAttempt,
        done: LandResult | None = None,
    ) -> tuple[MergeResult, bool] | Miss:
        """The task's one commit onto the execution branch: (the merge, whether the worktree
        is gone with it), or the strike of a commit refused or a merge that conflicted.
        Since LAND_PATCH in one activity (commit, merge, push, removal), before it in three;
        `done`: the specialist's activity landed it already (workflows/task_turn.py)."""
        ws, task, state, worktree = request.workspace, run.task, run.state, attempt.worktree
        merge = merge_request(request, task, worktree.branch)
        tick = merge.tick
        merged: MergeResult | None = None
        removed = False
        if done is not None:
            committed, merged, removed = done.committed, done.merged, done.removed
        elif workflow.patched(LAND_PATCH):
            landed = await self.land(
                request,
                LandRequest(
                    worktree=worktree.path,
                    attempt=state.attempts,
                    base_commit=worktree.base_commit,
                    merge=merge,
                    execution_id=request.execution_id,
                ),
            )
            committed, merged, removed = landed.committed, landed.merged, landed.removed
        else:
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
            error = markers_left(committed.unresolved, committed.conflicting_with)
            self._failed(state, run.failures, error)
            run.error, run.tail = error, ""
            return Miss.STRIKE
        if committed.nested and workflow.patched(NESTED_PATCH):
            return self._strike(run, nested_left(committed.nested), "")
        if merged is None:
            merged = await self.merge_into_branch(
                request, worktree.branch, task.id, task.title, tick=tick
            )
        if not merged.merged:
            conflict = merged.conflict or ""
            return self._strike(
                run, "merge conflict: " + conflict.strip().partition("\n")[0], conflict
            )
        return merged, removed

    def _strike(self, run: TaskRound, error: str, tail: str) -> Miss:
        """A failed attempt: the next one is told why, with the output tail."""
        run.error, run.tail = error, tail
        self._failed(run.state, run.failures, error, tail)
        return Miss.STRIKE

    def _failed(
        self, state: TaskState, failures: list[AttemptFailure], error: str, detail: str = ""
    ) -> None:
        """An attempt failed: the task says why, and the next attempts and the escalation
        keep it with the earlier failures."""
        state.last_error = error
        failures.append(AttemptFailure.of(state.attempts, error, detail))

    def _specialist(self, request: PhaseInput, task: Task, *, fixing: bool) -> SpecialistRef:
        own = request.routes.get(task.id) or task.specialist or "implementer"
        if fixing:
            return self.fixer(request, default=own)
        return request.specialists.get(own) or SpecialistRef(name=own, backend="claude")
