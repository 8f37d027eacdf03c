"""The truth about a finished execution: what did not happen, why, and what a person does next.

The workflow records what happened as it goes; when it ends (aborted, rejected, cancelled,
failed, stopped at its budget, or Complete with tasks skipped), some of that record still reads
as if it were waiting to go on: phases `pending`, the task that was running at a cancel
`pending`. `settle` derives the final word from the progress alone (pure, deterministic): phases
that will not run say so and why, tasks that never started or were cut short say so, and every
task or gate left undone gets a to-do item naming how to continue.

Why two final statuses suffice (no `Blocked`): an execution that ends without finishing is
Partial whatever stopped it (a human's abort or rejection, a budget, an unanswered question);
what it needs from outside (more budget, an answer, a fix) is said item by item in the report's
to-do list, which scripts read from `human_todo`. A third status would split one exit code
(1: not complete) into two without telling a script anything the list does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coordinator.escalation import Action, Escalation

if TYPE_CHECKING:  # report.py builds its final report with these functions: no import cycle
    from coordinator.report import PhaseState, Progress, TaskState

_UNFINISHED = ("pending", "ready", "running", "fixing", "escalated")
# What a phase that did not run leaves for a person.
_PHASE_TODO = {
    "validation": "the system gates were not checked: run them on {where}",
    "integration": "the branch was not finalised or handed off: push {where} and open its "
    "pull request yourself",
    "review": "nobody reviewed the branch: review {where} yourself",
}


def _stopping_escalation(progress: Progress) -> Escalation | None:
    """The escalation whose answer (a human's, or the plan's timeout) ended the execution."""
    return next(
        (
            e
            for e in reversed(progress.escalations)
            if e.answer is not None and e.answer.action == Action.ABORT
        ),
        None,
    )


def stop_reason(progress: Progress) -> str:
    """Why a finished execution stopped before the end ("" when nothing stopped it)."""
    if progress.status == "cancelled":
        return "cancelled"
    if progress.status == "failed":
        return "failed"
    rejected = next((a for a in progress.approvals if a.state == "rejected"), None)
    if rejected is not None:
        who = f" by {rejected.answer.by}" if rejected.answer and rejected.answer.by else ""
        return f"rejected at {rejected.name}{who}"
    escalation = _stopping_escalation(progress)
    if escalation is None:
        return ""
    if escalation.state == "timed_out":
        return f"aborted: nobody answered escalation {escalation.id} in time"
    who = escalation.answer.by if escalation.answer and escalation.answer.by else "a human"
    if escalation.budget_usd is not None:
        return f"stopped at the budget by {who} (escalation {escalation.id})"
    return f"aborted by {who} (escalation {escalation.id})"


def continue_hint(progress: Progress) -> str:
    """The command that carries the work on from where the execution left it."""
    ws = progress.workspace
    if ws is None:
        return "run the plan again: `coord run PLAN`"
    # The branch lives in the execution's clone (and its home): fetched into the repository,
    # a person finishes it there, or a new execution starts from it.
    return (
        f"fetch the branch into your repository (`git fetch {ws.path} "
        f"{ws.branch}:{ws.branch}`), then finish it by hand, or `coord run PLAN` with "
        f"`base_branch: {ws.branch}` and the tasks left"
    )


def settled_phases(progress: Progress) -> list[PhaseState]:
    """Phases as they end: `not_run` (with why) instead of `pending`; a phase cut short
    `interrupted` (or `failed`) instead of `running`."""
    if not progress.status.finished:
        return progress.phases
    why = stop_reason(progress) or "the execution ended first"
    phases = []
    for phase in progress.phases:
        if phase.status == "pending":
            phase = phase.model_copy(update={"status": "not_run", "summary": f"not run ({why})"})
        elif phase.status == "running":
            status = "failed" if progress.status == "failed" else "interrupted"
            summary = f"{phase.summary}; {status} ({why})" if phase.summary else f"{status} ({why})"
            phase = phase.model_copy(update={"status": status, "summary": summary})
        phases.append(phase)
    return phases


def settled_tasks(progress: Progress) -> list[TaskState]:
    """Tasks as they end: never started `not_run`, cut short `interrupted`."""
    if not progress.status.finished:
        return progress.tasks
    tasks = []
    for task in progress.tasks:
        if task.status in _UNFINISHED:
            started = task.attempts > 0 or task.started_at is not None
            task = task.model_copy(update={"status": "interrupted" if started else "not_run"})
        tasks.append(task)
    return tasks


def _first_line(text: str, limit: int = 200) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _task_todo(progress: Progress, task: TaskState, why: str) -> str:
    name = f"Task {task.id} ({task.title})"
    asked = [e for e in progress.escalations if e.task_id == task.id and e.answer is not None]
    last = asked[-1] if asked else None
    if task.status == "skipped":
        if last is not None and last.answer is not None and last.answer.action == Action.SKIP:
            who = (
                "the plan's on_escalation_timeout (nobody answered)"
                if last.state == "timed_out"
                else last.answer.by or "a human"
            )
            what = f"was skipped by {who} at escalation {last.id} ({last.reason})"
        else:
            error = _first_line(task.last_error).removeprefix("skipped: ")
            what = f"was skipped ({error})" if error else "was skipped (the plan's on_skip)"
    elif task.status == "failed":
        error = _first_line(task.last_error) or "see its gates"
        what = f"failed after {task.attempts} attempt(s): {error}"
    elif task.status == "interrupted":
        what = (
            f"was interrupted after {task.attempts} attempt(s) ({why}); its unfinished work "
            "is not on the branch"
        )
    else:
        what = f"did not run ({why})"
    return f"{name} {what}. To do it: {continue_hint(progress)}."


def _mentioned(todo: list[str], needle: str) -> bool:
    return any(needle in item for item in todo)


def settled_todo(progress: Progress, human_todo: list[str]) -> list[str]:
    """The workflow's to-do items, then one for every task and gate left undone and every
    phase that did not run, each saying how to continue (nothing added to a Complete run)."""
    if not progress.status.finished or progress.status == "completed":
        return list(human_todo)
    todo = list(human_todo)
    why = stop_reason(progress) or "the execution ended first"
    for task in settled_tasks(progress):
        if task.status != "passed":
            todo.append(_task_todo(progress, task, why))
    ws = progress.workspace
    where = f"`{ws.branch}`" if ws else "the branch"
    for gate in progress.gates:
        if gate.passed or _mentioned(todo, f"gate {gate.name} ({gate.scope})"):
            continue
        log = f"; log {gate.log_path}" if gate.log_path else ""
        todo.append(
            f"The {gate.level} gate {gate.name} ({gate.scope}) still fails: fix it on "
            f"{where}, then run it again{log}. To continue: {continue_hint(progress)}."
        )
    for phase in settled_phases(progress):
        if phase.status == "not_run" and phase.name in _PHASE_TODO:
            what = _PHASE_TODO[phase.name].format(where=where)
            todo.append(f"The {phase.name} phase did not run ({why}): {what}.")
    return todo


def answer_text(e: Escalation) -> str:
    """How an escalation was answered, and by whom (or its state, when nobody answered)."""
    if e.answer is None:
        return e.state
    by = (
        " by the plan's on_escalation_timeout"
        if e.state == "timed_out"
        else (f" by {e.answer.by}" if e.answer.by else "")
    )
    guidance = f" ({e.answer.guidance})" if e.answer.guidance else ""
    return f"{e.answer.action.value}{by}{guidance}"
