"""Execution state as humans and scripts see it: the `progress` query and the final report.

Pure models and rendering: the workflow fills them, the CLI prints them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

PhaseName = Literal["setup", "implementation", "validation", "integration", "review"]
PHASES: tuple[PhaseName, ...] = ("setup", "implementation", "validation", "integration", "review")


class ExecutionStatus(StrEnum):
    """Where an execution stands; also the `CoordinatorStatus` search attribute."""

    RUNNING = "running"
    ESCALATED = "escalated"
    AWAITING_APPROVAL = "awaiting_approval"
    COMPLETED = "completed"
    PARTIAL = "partial"
    BLOCKED = "blocked"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in (
            ExecutionStatus.RUNNING,
            ExecutionStatus.ESCALATED,
            ExecutionStatus.AWAITING_APPROVAL,
        )


PhaseStatus = Literal["pending", "running", "done", "failed", "not_available"]
TaskStatus = Literal[
    "pending", "ready", "running", "passed", "fixing", "escalated", "skipped", "failed"
]


class PhaseState(BaseModel):
    name: PhaseName
    status: PhaseStatus = "pending"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    summary: str = ""


class TaskState(BaseModel):
    id: str
    title: str
    layer: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    specialist: str | None = None
    status: TaskStatus = "pending"
    attempts: int = 0


class Workspace(BaseModel):
    """Where an execution works: a clone of the repository on the worker's host."""

    path: str
    branch: str
    base_branch: str
    base_commit: str
    head_commit: str


class Progress(BaseModel):
    """The answer to the `progress` query."""

    execution_id: str
    plan_name: str
    status: ExecutionStatus = ExecutionStatus.RUNNING
    phase: PhaseName = "setup"
    phases: list[PhaseState]
    tasks: list[TaskState]
    workspace: Workspace | None = None
    problems: list[str] = Field(default_factory=list)
    started_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def percent(self) -> int:
        """Share of tasks finished (passed or skipped), as the Int search attribute wants it."""
        if not self.tasks:
            return 100 if self.status == ExecutionStatus.COMPLETED else 0
        finished = sum(1 for t in self.tasks if t.status in ("passed", "skipped"))
        return finished * 100 // len(self.tasks)


ReportStatus = Literal["Complete", "Partial", "Blocked", "Cancelled", "Failed"]

_REPORT_STATUS: dict[ExecutionStatus, ReportStatus] = {
    ExecutionStatus.COMPLETED: "Complete",
    ExecutionStatus.PARTIAL: "Partial",
    ExecutionStatus.BLOCKED: "Blocked",
    ExecutionStatus.CANCELLED: "Cancelled",
    ExecutionStatus.FAILED: "Failed",
}


class ExecutionReport(BaseModel):
    """The seeds' "return protocol": what was done, what is left, what a human must do."""

    execution_id: str
    plan_name: str
    status: ReportStatus
    phases: list[PhaseState]
    tasks: list[TaskState]
    workspace: Workspace | None = None
    problems: list[str] = Field(default_factory=list)
    human_todo: list[str] = Field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def from_progress(
        cls, progress: Progress, *, human_todo: list[str], finished_at: datetime
    ) -> ExecutionReport:
        return cls(
            execution_id=progress.execution_id,
            plan_name=progress.plan_name,
            status=_REPORT_STATUS[progress.status],
            phases=progress.phases,
            tasks=progress.tasks,
            workspace=progress.workspace,
            problems=progress.problems,
            human_todo=human_todo,
            started_at=progress.started_at,
            finished_at=finished_at,
        )

    def to_markdown(self, ui_url: str | None = None) -> str:
        done = sum(1 for t in self.tasks if t.status == "passed")
        lines = [
            "## Execution Report",
            "",
            f"### Execution: {self.plan_name} (`{self.execution_id}`)",
            "",
            f"### Final Status: {self.status}",
            "",
            "### Phases",
            "",
            "| phase | status | summary |",
            "|---|---|---|",
        ]
        lines += [f"| {p.name} | {p.status} | {p.summary} |" for p in self.phases]
        lines += [
            "",
            "### Implementation Results",
            "",
            f"- Total Tasks: {done} completed / {len(self.tasks)} total",
            "",
            "| task | title | specialist | status | attempts |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {t.id} | {t.title} | {t.specialist or '-'} | {t.status} | {t.attempts} |"
            for t in self.tasks
        ]
        if self.workspace:
            ws = self.workspace
            lines += [
                "",
                "### Branch",
                "",
                f"- `{ws.branch}` from `{ws.base_branch}` at `{ws.base_commit[:12]}`, "
                f"head `{ws.head_commit[:12]}`",
                f"- workspace: `{ws.path}`",
            ]
        if self.problems:
            lines += ["", "### Problems", ""] + [f"- {p}" for p in self.problems]
        lines += ["", "### Final Validation Required", ""]
        lines += [f"- {item}" for item in self.human_todo] or ["- nothing"]
        if ui_url:
            lines += ["", f"Temporal UI: {ui_url}"]
        return "\n".join(lines) + "\n"
