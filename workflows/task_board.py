"""Task state: who owns it, and the execution's read model of it.

The implementation phase owns task state: it alone starts, fixes, escalates, passes, skips
or fails a task. Both sides start from the same rows, `plan_task_states` (the plan's tasks,
nothing started, each routed to its specialist). The execution keeps a `TaskBoard`: a read
model of the phase's task states, fed by one mechanism, the phase's task updates (`apply`:
one state per signal from executions that predate coalescing, several per signal since,
and the last ones in the phase's result). The execution writes to it only what the phase
cannot know: the routes setup found before the phase exists, and that a cancelled phase's
unfinished tasks are pending again. Workflow code: deterministic, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from coordinator.dag import resolve_dependencies
    from coordinator.execution import ImplementationResult
    from coordinator.plan import Task
    from coordinator.report import Progress, TaskState

# Task statuses a cancelled phase leaves half done: nothing works on them any more.
IN_FLIGHT = ("running", "fixing", "escalated", "ready")


def plan_task_states(tasks: Iterable[Task], routes: Mapping[str, str]) -> list[TaskState]:
    """A row per task of the plan, nothing started yet, with its dependencies resolved and
    its specialist as setup routed it (`routes`; the plan's own choice otherwise)."""
    tasks = list(tasks)
    deps = resolve_dependencies(tasks)
    return [
        TaskState(
            id=t.id,
            title=t.title,
            layer=t.layer,
            depends_on=list(deps[t.id]),
            specialist=routes.get(t.id, t.specialist),
        )
        for t in tasks
    ]


class TaskBoard:
    """The execution's view of the tasks, kept in the progress it shows (`progress.tasks`,
    which the query returns and a continue-as-new carries)."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    @property
    def tasks(self) -> list[TaskState]:
        return self._progress.tasks

    def apply(self, states: Iterable[TaskState]) -> None:
        """The phase's latest states of some tasks replace what the board showed."""
        changed = {s.id: s for s in states}
        self._progress.tasks = [changed.get(t.id, t) for t in self._progress.tasks]

    def apply_result(self, result: ImplementationResult) -> None:
        """The phase ended: its result holds every task's state (a phase whose updates were
        not coalesced) or the updates no signal carried yet."""
        if result.tasks:
            self._progress.tasks = result.tasks
        elif result.updates:
            self.apply(result.updates)

    def route(self, routes: Mapping[str, str]) -> None:
        """Setup chose each task's specialist (before any phase has task state)."""
        for task in self._progress.tasks:
            task.specialist = routes.get(task.id, task.specialist)

    def phase_cancelled(self) -> None:
        """The phase was cancelled: tasks it had not finished are pending again."""
        for task in self._progress.tasks:
            if task.status in IN_FLIGHT:
                task.status = "pending"

    def passed(self) -> list[str]:
        return [t.id for t in self._progress.tasks if t.status == "passed"]

    def unfinished(self) -> list[str]:
        """Tasks neither passed nor skipped (a failed task counts: it is still to do)."""
        return [t.id for t in self._progress.tasks if t.status not in ("passed", "skipped")]

    def all_passed(self) -> bool:
        return all(t.status == "passed" for t in self._progress.tasks)
