"""What the phases report to the execution, kept in the progress it shows.

`PhaseReports` is the one writer of what the phases tell (gate verdicts, spend, the
workspace and its moves, escalations raised and closed by a timeout) and of each phase's
line (`set_phase`). Task states come through the `TaskBoard` (task_board.py). The
execution's signal handlers hand each report here, then publish. Workflow code:
deterministic, no I/O.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from coordinator.escalation import Escalation
    from coordinator.report import GateSummary, PhaseName, PhaseStatus, Progress, Spend, Workspace
    from workflows.task_board import TaskBoard


class PhaseReports:
    def __init__(self, progress: Progress, tasks: TaskBoard) -> None:
        self._progress = progress
        self._tasks = tasks

    def gate(self, gate: GateSummary) -> None:
        self._progress.record_gate(gate)

    def spend(self, spend: Spend) -> None:
        self._progress.spend.append(spend)

    def workspace_ready(self, workspace: Workspace) -> bool:
        """Setup made the workspace (told early, for the status file); False: known already."""
        if self._progress.workspace is not None:
            return False
        self._progress.workspace = workspace
        return True

    def workspace_moved(self, moved: Workspace) -> bool:
        """A phase re-homed the workspace: later phases start on the new host. The object
        changed in place is the one the phases' input holds. False: an older move."""
        ws = self._progress.workspace
        if ws is None or moved.moves <= ws.moves:
            return False
        ws.path, ws.host_queue, ws.moves = moved.path, moved.host_queue, moved.moves
        ws.former_dirs = moved.former_dirs
        return True

    def record_head(self, head: str) -> None:
        if self._progress.workspace is not None:
            self._progress.workspace.head_commit = head

    def escalation_raised(self, escalation: Escalation) -> None:
        escalation.completed = self._tasks.passed()
        escalation.remaining = self._tasks.unfinished()
        self._progress.escalations.append(escalation)

    def escalation_closed(self, escalation: Escalation) -> bool:
        """The plan's escalation_timeout answered it: nobody did. False: a human's answer
        got there first and stands."""
        escalations = self._progress.escalations
        if any(e.id == escalation.id and e.state != "pending" for e in escalations):
            return False
        self._progress.escalations = [
            escalation if e.id == escalation.id else e for e in escalations
        ]
        return True

    def set_phase(self, name: PhaseName, status: PhaseStatus, summary: str) -> None:
        now = workflow.now()
        for phase in self._progress.phases:
            if phase.name == name:
                if status == "running":
                    phase.started_at = now
                    self._progress.phase = name
                elif status in ("done", "failed", "skipped"):
                    phase.finished_at = now
                phase.status = status
                phase.summary = summary


def timed_out_note(escalation: Escalation) -> str | None:
    """What the human learns of an escalation nobody answered in time."""
    if escalation.answer is None:
        return None
    return (
        f"Nobody answered escalation {escalation.id} in time: the plan's "
        f"on_escalation_timeout applied ({escalation.answer.action.value}; "
        f"{escalation.reason})."
    )
