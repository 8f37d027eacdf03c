"""Execution state as humans and scripts see it: the `progress` query and the final report.

Pure models and rendering: the workflow fills them, the CLI prints them.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from coordinator import outcome
from coordinator.escalation import Approval, Escalation
from coordinator.execution_state import (
    PHASES as PHASES,
)
from coordinator.execution_state import (
    REPORT_STATUS as REPORT_STATUS,
)
from coordinator.execution_state import (
    ExecutionStatus as ExecutionStatus,
)
from coordinator.execution_state import (
    GateSummary as GateSummary,
)
from coordinator.execution_state import (
    PhaseName as PhaseName,
)
from coordinator.execution_state import (
    PhaseState as PhaseState,
)
from coordinator.execution_state import (
    PhaseStatus as PhaseStatus,
)
from coordinator.execution_state import (
    Progress as Progress,
)
from coordinator.execution_state import (
    ReportStatus as ReportStatus,
)
from coordinator.execution_state import (
    Spend as Spend,
)
from coordinator.execution_state import (
    TaskState as TaskState,
)
from coordinator.execution_state import (
    TaskStatus as TaskStatus,
)
from coordinator.execution_state import (
    Workspace as Workspace,
)
from coordinator.execution_state import (
    total_cost as total_cost,
)
from coordinator.handoff import HandoffState

_UNDONE = ("skipped", "failed", "not_run", "interrupted")


def _plan_file_lines(tasks: list[TaskState]) -> list[str]:
    """What the plan file the tasks came from says now: the ticked ones, and the ones left
    open (skipped, failed, not run) with why."""
    if not any(t.plan_tick for t in tasks):
        return []
    ticked = [t.id for t in tasks if t.plan_tick and t.plan_tick.startswith("ticked")]
    lines = ["", "### Plan file", ""]
    if ticked:
        where = next(t.plan_tick for t in tasks if t.plan_tick and t.plan_tick.startswith("ticked"))
        place = where.removeprefix("ticked ")
        lines.append(f"- {place[:1].upper()}{place[1:]}: ticked {', '.join(ticked)}")
    for t in tasks:
        if t.status != "passed":
            why = f": {t.last_error}" if t.last_error else ""
            lines.append(f"- {t.id} left open ({t.status}{why})")
        elif t.plan_tick and not t.plan_tick.startswith("ticked"):
            lines.append(f"- {t.id} passed, {t.plan_tick}")
    return lines


class ExecutionReport(BaseModel):
    """The seeds' "return protocol": what was done, what is left, what a human must do."""

    execution_id: str
    plan_name: str
    status: ReportStatus
    phases: list[PhaseState]
    tasks: list[TaskState]
    workspace: Workspace | None = None
    problems: list[str] = Field(default_factory=list)
    gates: list[GateSummary] = Field(default_factory=list)
    gate_totals: dict[str, tuple[int, int]] = Field(default_factory=dict)
    escalations: list[Escalation] = Field(default_factory=list)
    approvals: list[Approval] = Field(default_factory=list)
    review: str = ""
    handoff: HandoffState | None = None
    spend: list[Spend] = Field(default_factory=list)
    budget_usd: float | None = None
    human_todo: list[str] = Field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def from_progress(
        cls, progress: Progress, *, human_todo: list[str], finished_at: datetime | None
    ) -> ExecutionReport:
        """The report of `progress`; once it has ended, phases and tasks that did not run say
        so, and every task, gate and phase left undone is a to-do item (coordinator/outcome)."""
        return cls(
            execution_id=progress.execution_id,
            plan_name=progress.plan_name,
            status=REPORT_STATUS.get(progress.status, "In progress"),
            phases=outcome.settled_phases(progress),
            tasks=outcome.settled_tasks(progress),
            workspace=progress.workspace,
            problems=progress.problems,
            gates=progress.gates,
            gate_totals=progress.gate_totals(),
            escalations=progress.escalations,
            approvals=progress.approvals,
            review=progress.review,
            handoff=progress.handoff,
            spend=progress.spend,
            budget_usd=progress.budget_usd,
            human_todo=outcome.settled_todo(progress, human_todo),
            started_at=progress.started_at,
            finished_at=finished_at,
        )

    @property
    def tokens(self) -> int:
        return sum(t.tokens for t in self.tasks) + sum(s.tokens for s in self.spend)

    @property
    def cost_usd(self) -> float | None:
        return total_cost([t.cost_usd for t in self.tasks] + [s.cost_usd for s in self.spend])

    def to_markdown(self, ui_url: str | None = None) -> str:
        lines = self._heading_lines()
        lines += self._task_lines()
        lines += self._gate_lines()
        lines += self._decision_lines()
        lines += self._branch_lines()
        if self.handoff:
            lines += ["", "### Handoff", "", *handoff_lines(self.handoff)]
        if self.problems:
            lines += ["", "### Problems", ""] + [f"- {p}" for p in self.problems]
        lines += ["", "### Final Validation Required", ""]
        lines += [f"- {item}" for item in self.human_todo] or ["- nothing"]
        if ui_url:
            lines += ["", f"Temporal UI: {ui_url}"]
        return "\n".join(lines) + "\n"

    def _heading_lines(self) -> list[str]:
        """The title, the final status and the phases' table."""
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
        return lines + [f"| {p.name} | {p.status} | {_cell(p.summary)} |" for p in self.phases]

    def _task_lines(self) -> list[str]:
        """The totals, the tasks' table, the plan file and the spend outside tasks."""
        done = sum(1 for t in self.tasks if t.status == "passed")
        counts = {s: sum(1 for t in self.tasks if t.status == s) for s in _UNDONE}
        undone = [f"{n} {s.replace('_', ' ')}" for s, n in counts.items() if n]
        lines = [
            "",
            "### Implementation Results",
            "",
            f"- Total Tasks: {done} completed / {len(self.tasks)} total"
            + (f" ({', '.join(undone)})" if undone else ""),
            f"- Quality Gates: {_totals(self.gate_totals)}",
            f"- Tokens: {self.tokens}"
            + (f", cost ${self.cost_usd:.2f}" if self.cost_usd is not None else "")
            + (f" of a ${self.budget_usd:.2f} budget" if self.budget_usd is not None else ""),
            "",
            "| task | title | specialist | status | attempts | gates | tokens | cost | duration |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for t in self.tasks:
            duration = f"{t.duration_s:.0f}s" if t.duration_s is not None else "-"
            lines.append(f"{task_row(t)} {duration} |")
        lines += _plan_file_lines(self.tasks)
        if self.spend:
            lines += [
                "",
                "Outside tasks: "
                + ", ".join(
                    f"{s.scope} {s.tokens} tokens"
                    + (f" ${s.cost_usd:.2f}" if s.cost_usd is not None else "")
                    for s in self.spend
                ),
            ]
        return lines

    def _gate_lines(self) -> list[str]:
        """The quality gates' table, if any ran."""
        if not self.gates:
            return []
        return [
            "",
            "### Quality Gates",
            "",
            "| level | scope | gate | result |",
            "|---|---|---|---|",
        ] + [
            f"| {g.level} | {g.scope} | {g.name} | {'passed' if g.passed else 'FAILED'} |"
            for g in self.gates
        ]

    def _decision_lines(self) -> list[str]:
        """The review, the escalations and the approvals: what was judged and decided."""
        lines: list[str] = []
        if self.review:
            lines += ["", "### Review", "", self.review]
        if self.escalations:
            lines += ["", "### Escalations", ""]
            for e in self.escalations:
                answer = outcome.answer_text(e)
                lines.append(
                    f"- `{e.id}` ({e.phase}{', task ' + e.task_id if e.task_id else ''}): "
                    f"{e.reason} → {answer}"
                )
        if self.approvals:
            lines += ["", "### Approvals", ""]
            lines += [
                f"- {a.name}: {a.state}"
                + (f" by {a.answer.by}" if a.answer and a.answer.by else "")
                + (f" ({a.answer.reason})" if a.answer and a.answer.reason else "")
                for a in self.approvals
            ]
        return lines

    def _branch_lines(self) -> list[str]:
        """Where the work is: the branch, its workspace and any re-homing."""
        if not self.workspace:
            return []
        ws = self.workspace
        lines = [
            "",
            "### Branch",
            "",
            f"- `{ws.branch}` from `{ws.base_branch}` at `{ws.base_commit[:12]}`, "
            f"head `{ws.head_commit[:12]}`",
            f"- workspace: `{ws.path}`"
            + (f" (host queue `{ws.host_queue}`)" if ws.host_queue else ""),
        ]
        if ws.moves:
            lines.append(
                f"- re-homed {ws.moves} time(s): its worker was gone longer than the grace "
                "period; the branch came back from its home"
            )
        return lines


def handoff_lines(h: HandoffState) -> list[str]:
    """What was handed to GitHub, or why not (Markdown list items)."""
    if not h.enabled:
        why = h.skipped_reason or "not handed off yet"
        return [f"- GitHub `{h.repo}`: pull request step skipped: {why}. The branch stays local."]
    lines = []
    if h.pushed_head and h.branch:
        lines.append(f"- Branch `{h.branch}` pushed to `{h.repo}` at `{h.pushed_head[:12]}`")
    if h.pull_request:
        pr = h.pull_request
        lines.append(f"- Pull request [#{pr.number}]({pr.url})" + (" (draft)" if pr.draft else ""))
    if h.issue is not None:
        ticked = ", ".join(h.ticked) if h.ticked else "none"
        lines.append(f"- Issue #{h.issue}: boxes ticked for {ticked}")
    if h.status_comment_url:
        lines.append(f"- Status comment: {h.status_comment_url}")
    if h.review_event:
        lines.append(f"- Review posted on the pull request ({h.review_event})")
    if h.skipped_reason:
        lines.append(f"- Not handed off: {h.skipped_reason}")
    return lines or [f"- GitHub `{h.repo}`: nothing handed off yet"]


def _cell(text: str) -> str:
    """Markdown table cells hold one line without pipes."""
    return " ".join(text.split()).replace("|", "\\|")


def _totals(totals: dict[str, tuple[int, int]]) -> str:
    if not totals:
        return "none run"
    return ", ".join(f"{level} {passed}/{total}" for level, (passed, total) in totals.items())


def task_row(t: TaskState) -> str:
    """A task's row of the report's table (and the pull request's), up to its cost."""
    gates = f"{sum(g.passed for g in t.gates)}/{len(t.gates)}" if t.gates else "-"
    cost = f"${t.cost_usd:.2f}" if t.cost_usd is not None else "-"
    return (
        f"| {t.id} | {_cell(t.title)} | {t.specialist or '-'} | {t.status} "
        f"| {t.attempts} | {gates} | {t.tokens or '-'} | {cost} |"
    )
