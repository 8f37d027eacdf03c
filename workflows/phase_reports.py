"""What the phases report to the execution, kept in the progress it shows.

`PhaseReports` is the one writer of what the phases tell (gate verdicts, spend, the
workspace and its moves, the branch's head) and of each phase's line (`set_phase`). Task
states come through the `TaskBoard` (task_board.py), escalations through `Escalations`
(escalations.py). The execution's signal handlers hand each report here, then publish.
Workflow code: deterministic, no I/O.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from coordinator.report import GateSummary, PhaseName, PhaseStatus, Progress, Spend, Workspace


class PhaseReports:
    def __init__(self, progress: Progress) -> None:
        self._progress = progress

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
