"""Terminal rendering of progress (rich tables)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from coordinator.report import Progress

_STYLE = {
    "done": "green",
    "passed": "green",
    "running": "cyan",
    "fixing": "yellow",
    "escalated": "bold red",
    "failed": "red",
    "skipped": "dim",
    "not_available": "dim",
}


def progress_view(progress: Progress, ui_url: str | None = None) -> Group:
    head = Text.assemble(
        (progress.plan_name, "bold"),
        f"  {progress.execution_id}  ",
        (progress.status.value, _STYLE.get(progress.status.value, "")),
        f"  phase {progress.phase}  {progress.percent}% of tasks done",
    )
    phases = Table("phase", "status", "summary", title="Phases", title_justify="left")
    for ph in progress.phases:
        phases.add_row(ph.name, Text(ph.status, _STYLE.get(ph.status, "")), ph.summary)
    tasks = Table(
        "task",
        "layer",
        "depends on",
        "specialist",
        "status",
        "attempts",
        title="Tasks",
        title_justify="left",
    )
    for t in progress.tasks:
        tasks.add_row(
            t.id,
            t.layer or "",
            ", ".join(t.depends_on),
            t.specialist or "-",
            Text(t.status, _STYLE.get(t.status, "")),
            str(t.attempts),
        )
    parts: list[Table | Text] = [head, phases, tasks]
    if progress.workspace:
        ws = progress.workspace
        parts.append(Text(f"branch {ws.branch} (from {ws.base_branch}) in {ws.path}"))
    parts += [Text(f"problem: {p}", "red") for p in progress.problems]
    if ui_url:
        parts.append(Text(f"Web UI: {ui_url}"))
    return Group(*parts)
