"""Terminal rendering of progress (rich tables) and of the questions an execution asks."""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime

from rich.console import Group
from rich.table import Table
from rich.text import Text

from coordinator.escalation import (
    Approval,
    Escalation,
    approval_commands,
    resolve_commands,
)
from coordinator.report import GateSummary, Progress, TaskState

_STYLE = {
    "done": "green",
    "passed": "green",
    "running": "cyan",
    "fixing": "yellow",
    "escalated": "bold red",
    "awaiting_approval": "bold yellow",
    "failed": "red",
    "skipped": "dim",
    "not_available": "dim",
    "not_run": "dim",
    "interrupted": "yellow",
}

ERROR_LINES = 20  # lines of a failure's output shown with a question
FAILURE_LINES = 8  # lines of each earlier attempt's failure shown with a question

# Gate and specialist output is arbitrary text: no terminal escape sequences reach the screen.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean(text: str) -> str:
    """Text from a gate or a specialist, safe to print: no escapes or control characters."""
    return _CONTROL.sub("", _ANSI.sub("", text.replace("\r\n", "\n")))


def first_line(text: str, width: int = 120) -> str:
    line = next((ln.strip() for ln in clean(text).splitlines() if ln.strip()), "")
    return line if len(line) <= width else line[: width - 1] + "…"


def progress_view(progress: Progress, ui_url: str | None = None) -> Group:
    head = Text.assemble(
        (progress.plan_name, "bold"),
        f"  {progress.execution_id}  ",
        (progress.status.value, _STYLE.get(progress.status.value, "")),
        f"  phase {progress.phase}  {progress.passed} of {len(progress.tasks)} tasks passed",
    )
    phases = Table("phase", "status", "summary", title="Phases", title_justify="left")
    for ph in progress.phases:
        phases.add_row(ph.name, Text(ph.status, _STYLE.get(ph.status, "")), Text(ph.summary))
    tasks = Table(
        "task",
        "layer",
        "depends on",
        "specialist",
        "status",
        "attempts",
        "gates",
        "tokens",
        "cost",
        "time",
        title="Tasks",
        title_justify="left",
    )
    now = datetime.now(UTC)
    for t in progress.tasks:
        tasks.add_row(
            Text(t.id),
            Text(t.layer or ""),
            Text(", ".join(t.depends_on)),
            Text(t.specialist or "-"),
            Text(t.status, _STYLE.get(t.status, "")),
            str(t.attempts),
            _gate_count(t.gates),
            str(t.tokens) if t.tokens else "-",
            f"${t.cost_usd:.2f}" if t.cost_usd is not None else "-",
            task_time(t, now),
        )
    parts: list[Table | Text] = [head, phases, tasks]
    if progress.tokens or progress.budget_usd is not None:
        cost = f"${progress.cost_usd:.2f}" if progress.cost_usd is not None else "unpriced"
        budget = f" of a ${progress.budget_usd:.2f} budget" if progress.budget_usd else ""
        parts.append(Text(f"spent: {progress.tokens} tokens, {cost}{budget}"))
    parts += _gate_lines(progress)
    parts += _waiting_tables(progress)
    if progress.workspace:
        ws = progress.workspace
        host = f" on {ws.host_queue}" if ws.host_queue else ""
        moved = f", moved {ws.moves} time(s) from a lost worker" if ws.moves else ""
        parts.append(Text(f"branch {ws.branch} (from {ws.base_branch}) in {ws.path}{host}{moved}"))
    parts += [Text(f"problem: {p}", "red") for p in progress.problems]
    if ui_url:
        parts.append(Text(f"Web UI: {ui_url}"))
    return Group(*parts)


def elapsed(seconds: float) -> str:
    """12s, 3m05s, 1h02m."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def task_time(t: TaskState, now: datetime) -> str:
    """How long a task took, or (running) how long it has been going."""
    if t.duration_s is not None:
        return elapsed(t.duration_s)
    if t.started_at is not None and t.status in ("running", "fixing", "escalated"):
        return elapsed((now - t.started_at).total_seconds()) + " so far"
    return "-"


def _gate_count(gates: list[GateSummary]) -> Text:
    if not gates:
        return Text("-")
    passed = sum(g.passed for g in gates)
    return Text(f"{passed}/{len(gates)}", "green" if passed == len(gates) else "red")


def _gate_lines(progress: Progress) -> list[Table | Text]:
    """Gates passed/total per level, the failing layer/system/review gates, and the last error
    of every task that failed or is stuck."""
    lines: list[Table | Text] = []
    totals = progress.gate_totals()
    if totals:
        lines.append(
            Text(
                "gates passed: "
                + ", ".join(f"{level} {p}/{total}" for level, (p, total) in totals.items())
            )
        )
    for g in progress.gates:
        if not g.passed:
            how = "timed out" if g.timed_out else f"exit {g.exit_code}"
            log = f", log {g.log_path}" if g.log_path else ""
            lines.append(Text(f"{g.level} gate {g.name} ({g.scope}) failed: {how}{log}", "red"))
    for t in _troubled(progress.tasks):
        lines.append(
            Text(f"{t.id} ({t.status}, attempt {t.attempts}): {first_line(t.last_error)}", "red")
        )
    return lines


def _troubled(tasks: list[TaskState]) -> list[TaskState]:
    return [t for t in tasks if t.status in ("failed", "escalated", "fixing") and t.last_error]


def _waiting_tables(progress: Progress) -> list[Table | Text]:
    parts: list[Table | Text] = []
    pending = progress.pending_escalations
    if pending:
        table = Table(
            "escalation",
            "task",
            "phase",
            "reason",
            title="Waiting on a human",
            title_justify="left",
        )
        for e in pending:
            table.add_row(Text(e.id, "bold red"), Text(e.task_id or "-"), e.phase, Text(e.reason))
        parts.append(table)
    approval = progress.pending_approval
    if approval:
        parts.append(Text(f"approval {approval.name} pending: {approval.question}", "bold yellow"))
    return parts


def waiting_text(progress: Progress) -> str:
    """What an execution waits for, precisely, and the exact commands that answer it.

    Plain text (no wrapping, no markup), so the commands can be copied and grepped."""
    eid = progress.execution_id
    pending = progress.pending_escalations
    approval = progress.pending_approval
    asks = [f"{len(pending)} escalation{'s' if len(pending) != 1 else ''}"] if pending else []
    if approval:
        asks.append(f"approval {approval.name}")
    lines = [f"{eid} is waiting on a human: {' and '.join(asks) or progress.status.value}"]
    for e in pending:
        lines += ["", *escalation_lines(eid, e)]
    if approval:
        lines += ["", *approval_lines(eid, approval)]
    if not pending and not approval:
        lines += ["", f"(nothing is pending any more; 'coord status {_q(eid)}' shows where it is)"]
    return "\n".join(lines)


def escalation_lines(execution_id: str, e: Escalation) -> list[str]:
    where = f"task {e.task_id}, phase {e.phase}" if e.task_id else f"phase {e.phase}"
    lines = [
        f"escalation {e.id} ({where})",
        f"  reason:    {clean(e.reason)}",
        f"  question:  {clean(e.question)}",
        f"  attempts:  {e.attempts}",
    ]
    if e.last_error:
        lines.append(f"  last error: {first_line(e.last_error, 200)}")
    lines += _failure_lines(e)
    output = [ln.rstrip() for ln in clean(e.output_tail).rstrip().splitlines()]
    if output:
        # The end of a failure's output is where the summary is (pytest, compilers, linters).
        shown = output[-ERROR_LINES:]
        lines.append("  output (last lines):")
        if len(output) > len(shown):
            lines.append(f"    ... {len(output) - len(shown)} earlier lines, see the log")
        lines += [f"    | {ln}" for ln in shown]
    if e.recommended:
        lines.append("  recommended:")
        lines += [f"    - {clean(r)}" for r in e.recommended]
    if e.artifacts:
        lines.append("  logs:")
        lines += [f"    {a}" for a in e.artifacts]
    coord, temporal = resolve_commands(execution_id, e)
    lines += ["  answer with one of:", *[f"    {c}" for c in coord]]
    lines += ["  or with the Temporal CLI:", *[f"    {c}" for c in temporal]]
    return lines


def _failure_lines(e: Escalation) -> list[str]:
    """Every failed attempt, oldest first: what failed and the start of what the fixer got
    (where a merge conflict names the other task and quotes both sides)."""
    if not e.failures:
        return []
    lines = ["  failed attempts (oldest first):"]
    for failure in e.failures:
        lines.append(f"    attempt {failure.attempt}: {first_line(failure.error, 300)}")
        detail = [ln.rstrip() for ln in clean(failure.detail).splitlines() if ln.strip()]
        lines += [f"      | {ln}" for ln in detail[:FAILURE_LINES]]
        if len(detail) > FAILURE_LINES:
            lines.append(f"      ... {len(detail) - FAILURE_LINES} more lines")
    return lines


def approval_lines(execution_id: str, a: Approval) -> list[str]:
    coord, temporal = approval_commands(execution_id)
    return [
        f"approval {a.name}",
        f"  question:  {clean(a.question)}",
        "  answer with one of:",
        *[f"    {c}" for c in coord],
        "  or with the Temporal CLI:",
        *[f"    {c}" for c in temporal],
    ]


def _q(word: str) -> str:
    return shlex.quote(word)
