"""Execution state while it runs: phases, tasks, spend, the workspace, and the `progress` query's
`Progress` (pure models; the workflow fills them, the CLI and the final report read them).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, computed_field

from coordinator.escalation import Approval, Escalation
from coordinator.handoff import HandoffState
from coordinator.hosts import Placement, Recipe
from coordinator.work import GateLevel, GateResult

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


# A finished execution's report (coordinator/outcome.py) says `not_run` for a phase or task
# that never started and `interrupted` for one cut short (abort, cancel, failure).
PhaseStatus = Literal[
    "pending", "running", "done", "failed", "skipped", "not_available", "not_run", "interrupted"
]
TaskStatus = Literal[
    "pending",
    "ready",
    "running",
    "passed",
    "fixing",
    "escalated",
    "skipped",
    "failed",
    "not_run",
    "interrupted",
]


class PhaseState(BaseModel):
    name: PhaseName
    status: PhaseStatus = "pending"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    summary: str = ""


class GateSummary(BaseModel):
    """A gate's latest verdict; the output tail stays in the activity result and the log."""

    name: str
    level: GateLevel
    scope: str
    passed: bool
    exit_code: int | None = None
    timed_out: bool = False
    duration_s: float = 0.0
    log_path: str = ""

    @classmethod
    def of(cls, result: GateResult) -> GateSummary:
        return cls(
            name=result.name,
            level=result.level,
            scope=result.scope,
            passed=result.passed,
            exit_code=result.exit_code,
            timed_out=result.timed_out,
            duration_s=result.duration_s,
            log_path=result.log_path,
        )


class TaskState(BaseModel):
    id: str
    title: str
    layer: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    specialist: str | None = None
    status: TaskStatus = "pending"
    attempts: int = 0
    gates: list[GateSummary] = Field(default_factory=list)
    last_error: str = ""
    commit: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    tokens: int = 0
    cost_usd: float | None = None
    # A plan read from a file in the repository: whether the task's commit ticked it there
    # ("ticked in specs/003/tasks.md"), or why not.
    plan_tick: str | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class Spend(BaseModel):
    """Tokens and cost spent outside a task: a gate round's fixer, the reviewer."""

    scope: str
    tokens: int = 0
    cost_usd: float | None = None


def total_cost(costs: list[float | None]) -> float | None:
    known = [c for c in costs if c is not None]
    return sum(known) if known else None


class Workspace(BaseModel):
    """Where an execution works: a clone of the repository on the worker's host."""

    path: str
    branch: str
    base_branch: str
    base_commit: str
    head_commit: str
    # Where the clone is (coordinator/hosts.py). Workspaces prepared before host queues have
    # no host_queue: their steps stay on the shared queue.
    execution_id: str = ""
    repository: str = ""
    host_queue: str | None = None
    home: str | None = None  # where the execution branch is pushed after every merge
    host_grace_s: float | None = None  # a host silent for longer is given up (re-homing)
    moves: int = 0  # how often the execution re-homed to another worker
    recipe: Recipe | None = None  # its environment, to make again after a move
    # Where it was before (`<workspace root>/<execution id>` of each host it left): paths
    # there, in the phases' inputs, name the same places here.
    former_dirs: list[str] = Field(default_factory=list)
    # The workflow's own bookkeeping while it runs (workflows/placement.py); never serialized.
    moving: bool = Field(default=False, exclude=True)
    worktrees: dict[str, Placement] = Field(default_factory=dict, exclude=True)


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
    # Layer, system and review gates, latest verdict per (level, scope, name).
    gates: list[GateSummary] = Field(default_factory=list)
    escalations: list[Escalation] = Field(default_factory=list)
    approvals: list[Approval] = Field(default_factory=list)
    review: str = ""
    handoff: HandoffState | None = None  # when the plan configures a GitHub handoff
    # Claude specialists' spending outside tasks, and the execution's budget (USD) as it
    # stands (the plan's, or what a human raised it to).
    spend: list[Spend] = Field(default_factory=list)
    budget_usd: float | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def tokens(self) -> int:
        return sum(t.tokens for t in self.tasks) + sum(s.tokens for s in self.spend)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cost_usd(self) -> float | None:
        return total_cost([t.cost_usd for t in self.tasks] + [s.cost_usd for s in self.spend])

    @property
    def pending_escalations(self) -> list[Escalation]:
        return [e for e in self.escalations if e.state == "pending"]

    @property
    def pending_approval(self) -> Approval | None:
        return next((a for a in self.approvals if a.state == "pending"), None)

    def record_gate(self, gate: GateSummary) -> None:
        self.gates = [
            g
            for g in self.gates
            if (g.level, g.scope, g.name) != (gate.level, gate.scope, gate.name)
        ] + [gate]

    def gate_totals(self) -> dict[str, tuple[int, int]]:
        """Gates passed / total per level (task gates included), latest verdicts."""
        every = [g for t in self.tasks for g in t.gates] + self.gates
        totals: dict[str, tuple[int, int]] = {}
        for gate in every:
            passed, total = totals.get(gate.level, (0, 0))
            totals[gate.level] = (passed + gate.passed, total + 1)
        return totals

    @computed_field  # type: ignore[prop-decorator]
    @property
    def percent(self) -> int:
        """Share of tasks settled, as the Int search attribute wants it: once the execution
        has ended, the share that passed (a Partial run with a skipped task is not at 100 %).
        While it runs, skipped tasks count as settled too: the workflow upserts the search
        attribute when this value changes, and running executions must replay the same
        upserts (the change to "passed only" while running needs a `workflow.patched`)."""
        if not self.tasks:
            return 100 if self.status == ExecutionStatus.COMPLETED else 0
        settled = ("passed",) if self.status.finished else ("passed", "skipped")
        return sum(1 for t in self.tasks if t.status in settled) * 100 // len(self.tasks)

    @property
    def passed(self) -> int:
        return sum(1 for t in self.tasks if t.status == "passed")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def critical_path_remaining(self) -> int:
        """The longest chain of tasks still to finish: a lower bound on the steps left."""
        open_tasks = {
            t.id: t for t in self.tasks if t.status not in ("passed", "skipped", "failed")
        }
        chain: dict[str, int] = {}
        # Tasks come in plan order, which validation guarantees is acyclic, not topological:
        # settle lengths by repeated passes (bounded by the number of tasks).
        for _ in range(len(open_tasks)):
            changed = False
            for tid, task in open_tasks.items():
                length = 1 + max(
                    (chain.get(d, 0) for d in task.depends_on if d in open_tasks), default=0
                )
                if chain.get(tid) != length:
                    chain[tid], changed = length, True
            if not changed:
                break
        return max(chain.values(), default=0)


# "In progress" only in a report rendered before the end (the pull request's first body).
ReportStatus = Literal["Complete", "Partial", "Blocked", "Cancelled", "Failed", "In progress"]

REPORT_STATUS: dict[ExecutionStatus, ReportStatus] = {
    ExecutionStatus.COMPLETED: "Complete",
    ExecutionStatus.PARTIAL: "Partial",
    ExecutionStatus.BLOCKED: "Blocked",
    ExecutionStatus.CANCELLED: "Cancelled",
    ExecutionStatus.FAILED: "Failed",
}
