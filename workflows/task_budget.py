"""A task's own budget (its plan's max_cost and max_tokens, as a human raised them) beside
the execution's: what an attempt may spend, and when a task must stop and ask. The base of
TaskWork (workflows/task_run.py). Workflow code: deterministic, no I/O."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from coordinator.claude import AttemptSpend
    from coordinator.execution import PhaseInput
    from coordinator.plan import Task
    from coordinator.report import TaskState
    from workflows.phase import PhaseWorkflow


class TaskBudgets(PhaseWorkflow):
    def __init__(self) -> None:
        super().__init__()
        self._abort = False  # a human stopped the execution (at a budget question, say)
        # Task budgets as a human raised them (USD), and extra token allowances granted.
        self._task_cost_limit: dict[str, float] = {}
        self._task_token_limit: dict[str, int] = {}
        self._task_budget_hit: dict[str, tuple[str, float | None]] = {}

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
