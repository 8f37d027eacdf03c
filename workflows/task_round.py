"""One task's attempts since its last escalation (`TaskRound`) and what a fixer is told of a
conflict replayed into its worktree. Workflow code: deterministic, no I/O."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from coordinator.attempts import AttemptFailure
    from coordinator.plan import Task
    from coordinator.report import TaskState
    from workflows.until_resolved import Miss, UntilResolved


class TaskRound:
    """One task's attempts since its last escalation: their failures (what the next attempt
    and the escalation are told), a note for the next attempt, and whether its worktree
    starts again from the branch."""

    def __init__(self, task: Task, state: TaskState, guidance: str, fresh: bool) -> None:
        self.task, self.state = task, state
        self.until = UntilResolved[None](guidance=guidance)
        self.failures: list[AttemptFailure] = []
        self.note = ""  # what the next attempt needs to know besides the failures
        self.error, self.tail = "", ""
        self.fresh = fresh

    def start_over(self, *, fresh: bool) -> list[AttemptFailure]:
        self.failures, self.note, self.error, self.tail = [], "", "", ""
        self.fresh = fresh
        return self.failures

    def ask_now(self, error: str) -> Miss:
        self.error, self.tail = error, ""
        return Miss.ASK_NOW


def replayed(files: list[str], conflict: str | None) -> str:
    """What a fixer is told when its worktree holds a conflict replayed by the git step."""
    return (
        "The execution branch moved: your change was replayed onto it, with git's conflict "
        f"markers where it clashes, in {', '.join(files)}. Resolve every conflict there: the "
        "commit is refused while any `<<<<<<<`, `=======` or `>>>>>>>` line the merge left "
        "is still in those files.\n" + (conflict or "")
    )
