"""What the plan readers produce: plan data with a line map, every problem, and what a run
needs to know about where the plan came from (task lines, ticks, where each dependency came
from). Pure data; no reader logic here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from coordinator.loader import Edge, LoadedPlan, LoadIssue, PathKey
from coordinator.progress import PlanSource

ReaderName = Literal["breakdown", "speckit", "kiro", "headings", "taskmaster"]

READER_TITLES: dict[str, str] = {
    "breakdown": "a Markdown breakdown (layers, streams or a task list)",
    "speckit": "a spec-kit tasks.md",
    "kiro": "a Kiro / Agent OS tasks.md (numbered tasks)",
    "headings": "a heading-style plan (### Task N)",
    "taskmaster": "a Taskmaster tasks.json",
}

# What a task's mark says: to do, done, skipped by its author (`[-]`), optional (Kiro's
# `- [ ]*`), or deferred (Taskmaster): only "open" tasks run.
Status = Literal["open", "done", "skipped", "optional", "deferred"]


class Issues:
    """Where a reader puts the problems it finds (all of them: nothing raises)."""

    def __init__(self) -> None:
        self.items: list[LoadIssue] = []

    def error(self, line: int | None, message: str, path: PathKey = ()) -> None:
        self.items.append(LoadIssue(message, path, line))

    def warning(self, line: int | None, message: str, path: PathKey = ()) -> None:
        self.items.append(LoadIssue(message, path, line, severity="warning"))

    def add(self, issue: LoadIssue) -> None:
        self.items.append(issue)


@dataclass
class Ref:
    """A task (or a group of tasks) another task depends on, as its author wrote it."""

    text: str
    line: int
    why: str = "depends on"  # where the dependency was written, for `coord validate`
    # Read from prose (a "Dependencies" section): dropped, with a warning, when it
    # contradicts the rest of the plan (a cycle) instead of blocking it.
    inferred: bool = False


@dataclass
class Details:
    """What an item's indented lines say: dependencies, files, gates, specialist, prompt."""

    refs: list[Ref] | None = None  # None: no `depends on:` line
    refs_line: int = 0
    files: list[tuple[str, int]] = field(default_factory=list)
    gates: list[tuple[Any, int]] = field(default_factory=list)
    specialist: str | None = None
    specialist_line: int = 0
    # A `(name)` or `@name` marker: a preference that falls back (with a warning) when no
    # specialist has that name; a `specialist:` line is a requirement.
    specialist_marker: bool = False
    prompt: str = ""
    prompt_line: int | None = None


@dataclass(frozen=True)
class TaskLine:
    """Where a task of the plan is: its item's (or heading's) line, and whether it is done."""

    id: str
    title: str
    line: int
    ticked: bool
    group: str | None = None
    status: Status = "open"


@dataclass
class ParsedPlan:
    """A plan file read into plan data.

    `data` is what a YAML plan would hold (only the tasks to run); `lines` maps data paths
    (``("tasks", 2, "depends_on", 0)``) to lines of the file; `issues` holds every problem
    found while reading; `tasks` lists every task, done ones too, with its line. `edges` says
    where each dependency came from; `source` is what ticking finished tasks back needs.
    """

    source: str
    title: str | None
    data: dict[str, Any]
    lines: dict[PathKey, int] = field(default_factory=dict)
    issues: list[LoadIssue] = field(default_factory=list)
    tasks: list[TaskLine] = field(default_factory=list)
    no_tasks_hint: str = ""  # appended to "the plan has no tasks"
    reader: ReaderName = "breakdown"
    edges: list[Edge] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plan_source: PlanSource | None = None
    # Ids of tasks whose specialist is a marker (`@name`, `(name)`): they fall back.
    soft_specialists: frozenset[str] = frozenset()

    @property
    def checkbox_lines(self) -> dict[str, int]:
        """Task id -> line (1-based) of its item; the first wins for a duplicate id."""
        out: dict[str, int] = {}
        for task in self.tasks:
            out.setdefault(task.id, task.line)
        return out

    @property
    def ticked(self) -> list[str]:
        """Ids of the tasks already done: left out of the plan."""
        return [task.id for task in self.tasks if task.ticked]

    @property
    def nothing_to_do(self) -> bool:
        """Tasks were found, and none is left to run (all done, skipped or optional)."""
        return bool(self.tasks) and not any(t.status == "open" for t in self.tasks)

    def to_loaded(self) -> LoadedPlan:
        return LoadedPlan(
            self.source,
            self.data,
            self.lines,
            list(self.issues),
            no_tasks_hint=self.no_tasks_hint,
            reader=self.reader,
            edges=list(self.edges),
            notes=list(self.notes),
            nothing_to_do=self.nothing_to_do,
            plan_source=self.plan_source,
            soft_specialists=self.soft_specialists,
        )


__all__ = [
    "READER_TITLES",
    "Details",
    "Issues",
    "ParsedPlan",
    "ReaderName",
    "Ref",
    "Status",
    "TaskLine",
]
