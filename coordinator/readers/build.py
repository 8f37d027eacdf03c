"""From what a reader found to plan data: the tasks to run, each with every dependency made
explicit (the order the layout implies, what the author wrote, the same-file rule), the
settings, a line for every path, and what ticking tasks back needs.

Shared by the spec-kit, Kiro, heading-style and Taskmaster readers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from coordinator.loader import Edge, PathKey
from coordinator.progress import PlanSource, TaskTick
from coordinator.readers.model import Details, Issues, ParsedPlan, ReaderName, Ref, Status, TaskLine
from coordinator.readers.order import Graph, Seq, order_edges, same_file_edges
from coordinator.readers.refs import NO_DEPENDENCIES, expand_range, leading_id
from coordinator.readers.settings import Settings, add_gates, normalize_id, plan_settings

_STATUS_WORDS = {
    "done": "done",
    "skipped": "skipped by their author (`[-]`, cancelled)",
    "optional": "optional (`- [ ]*`: remove the `*` to run them)",
    "deferred": "deferred",
}


@dataclass
class ReadTask(Details):
    id: str = ""
    title: str = ""
    line: int = 0
    status: Status = "open"
    group: str | None = None  # the phase (layer) it belongs to
    group_line: int = 0
    parallel: bool = False  # marked to run alongside its siblings ([P], (P))
    context: str = ""  # what the specialist also needs (a parent's details, a test strategy)
    tick: TaskTick | None = None


@dataclass
class ReadPlan:
    source: str
    reader: ReaderName
    tasks: list[ReadTask]
    issues: Issues
    order: Seq | None = None
    title: str | None = None
    title_line: int | None = None
    settings: Settings = field(default_factory=Settings)
    gates: dict[str, list[tuple[Any, int]]] = field(default_factory=dict)
    name_hint: str | None = None
    mark: Literal["x", "X"] = "x"
    tick_format: Literal["markdown", "taskmaster"] = "markdown"
    tag: str | None = None
    notes: list[str] = field(default_factory=list)
    empty_hint: str = ""  # why there are no tasks, when there are none


def build_plan(plan: ReadPlan, defaults: Mapping[str, Any] | None = None) -> ParsedPlan:
    return _Builder(plan, dict(defaults or {})).build()


class _Builder:
    def __init__(self, plan: ReadPlan, defaults: dict[str, Any]) -> None:
        self.plan = plan
        self.defaults = defaults
        self.lines: dict[PathKey, int] = {}
        self.tasks: list[ReadTask] = []
        self.by_id: dict[str, ReadTask] = {}
        self.by_title: dict[str, ReadTask] = {}
        self.groups: dict[str, list[ReadTask]] = {}
        self.edges: list[Edge] = []
        self.dep_lines: dict[tuple[str, str], int] = {}
        self.unknown: dict[str, list[tuple[str, int]]] = {}

    def build(self) -> ParsedPlan:
        plan = self.plan
        self._index()
        pending = [t for t in self.tasks if t.status == "open"]
        graph = Graph(t.id for t in pending)
        open_ids = set(graph.deps)
        if plan.order is not None:
            for waiting, dep, why in order_edges(plan.order, open_ids):
                self._edge(graph, waiting, dep, why)
        for task in pending:
            for ref in task.refs or []:
                self._follow(graph, task, ref)
        files = {t.id: [name for name, _ in t.files] for t in pending}
        for waiting, dep, why in same_file_edges(graph, files, [t.id for t in pending]):
            self.edges.append(Edge(waiting, dep, why))
        data = plan_settings(
            plan.settings,
            plan.title,
            plan.title_line,
            self.defaults,
            self.lines,
            name_hint=plan.name_hint,
        )
        add_gates(data, plan.gates, self.lines)
        data["tasks"] = [self._task(k, t, graph) for k, t in enumerate(pending)]
        self.lines[("tasks",)] = (pending[0].line if pending else None) or plan.title_line or 1
        self._report_left_out()
        return ParsedPlan(
            source=plan.source,
            title=plan.title,
            data=data,
            lines=self.lines,
            issues=sorted(plan.issues.items, key=lambda issue: issue.line or 0),
            tasks=[
                TaskLine(t.id, t.title, t.line, t.status != "open", t.group, t.status)
                for t in self.tasks
            ],
            no_tasks_hint="" if self.tasks else plan.empty_hint,
            reader=plan.reader,
            edges=self.edges,
            notes=list(plan.notes),
            plan_source=PlanSource(
                reader=plan.reader,
                format=plan.tick_format,
                mark=plan.mark,
                tag=plan.tag,
                tasks={t.id: t.tick for t in pending if t.tick is not None},
            ),
            soft_specialists=frozenset(t.id for t in pending if t.specialist_marker),
        )

    def _index(self) -> None:
        for task in self.plan.tasks:
            first = self.by_id.get(task.id)
            if first is not None:
                self.plan.issues.error(
                    task.line, f"duplicate task id '{task.id}' (first used on line {first.line})"
                )
                continue
            self.by_id[task.id] = task
            self.tasks.append(task)
            if task.title:
                self.by_title.setdefault(" ".join(task.title.split()).casefold(), task)
            if task.group:
                self.groups.setdefault(task.group.casefold(), []).append(task)

    def _edge(self, graph: Graph, task: str, dep: str, why: str, line: int | None = None) -> None:
        if graph.add(task, dep):
            self.edges.append(Edge(task, dep, why))
            if line is not None:
                self.dep_lines[(task, dep)] = line

    def _follow(self, graph: Graph, task: ReadTask, ref: Ref) -> None:
        targets = self._resolve(ref)
        if targets is None:
            if not ref.inferred:  # validation reports it, at the reference's line
                key = normalize_id(ref.text)
                self.unknown.setdefault(task.id, []).append((key, ref.line))
            return
        for target in targets:
            if target.status != "open" or target.id == task.id:
                continue  # done, skipped or optional: nothing to wait for
            if ref.inferred and graph.reaches(target.id, task.id):
                self.plan.issues.warning(
                    ref.line,
                    f"'{target.id} before {task.id}' is not followed: {target.id} already "
                    f"waits for {task.id} (the plan's order), so it would be a cycle",
                )
                continue
            self._edge(graph, task.id, target.id, ref.why, ref.line)

    def _resolve(self, ref: Ref) -> list[ReadTask] | None:
        """The tasks a reference names, or None when it names none."""
        text = " ".join(ref.text.split())
        if text.casefold() in NO_DEPENDENCIES:
            return []
        for candidate in (text, leading_id(text)):
            if candidate is None:
                continue
            found = self.by_id.get(normalize_id(candidate)) or self.by_title.get(
                candidate.casefold()
            )
            if found is not None:
                return [found]
        expanded = expand_range(text)
        if expanded is not None:
            found_all = [self.by_id[key] for key in expanded if key in self.by_id]
            return found_all or None
        group = self.groups.get(text.casefold())
        return list(group) if group is not None else None

    def _task(self, k: int, task: ReadTask, graph: Graph) -> dict[str, Any]:
        path: PathKey = ("tasks", k)
        data: dict[str, Any] = {"id": task.id, "title": task.title}
        for key in ((), ("id",), ("title",)):
            self.lines[(*path, *key)] = task.line
        if task.specialist is not None:
            data["specialist"] = task.specialist
            self.lines[(*path, "specialist")] = task.specialist_line or task.line
        prompt = "\n\n".join(part for part in (task.prompt, task.context) if part.strip())
        if prompt:
            data["prompt"] = prompt
            self.lines[(*path, "prompt")] = task.prompt_line or task.line
        if task.group is not None:
            data["layer"] = task.group
            self.lines[(*path, "layer")] = task.group_line or task.line
        depends = [
            (dep, self.dep_lines.get((task.id, dep), task.line)) for dep in graph.deps[task.id]
        ]
        depends += self.unknown.get(task.id, [])
        data["depends_on"] = [dep for dep, _ in depends]
        self.lines[(*path, "depends_on")] = task.refs_line or task.line
        for j, (_, line) in enumerate(depends):
            self.lines[(*path, "depends_on", j)] = line
        for name, values in (("files", task.files), ("gates", task.gates)):
            if values:
                data[name] = [value for value, _ in values]
                self.lines[(*path, name)] = values[0][1]
                for j, (_, line) in enumerate(values):
                    self.lines[(*path, name, j)] = line
        return data

    def _report_left_out(self) -> None:
        for status, words in _STATUS_WORDS.items():
            left = [t for t in self.tasks if t.status == status]
            if not left:
                continue
            ids = ", ".join(t.id for t in left[:12]) + (" ..." if len(left) > 12 else "")
            noun = "task" if len(left) == 1 else "tasks"
            if status == "done":
                self.plan.notes.append(f"{len(left)} {noun} already done, left out: {ids}")
            else:
                self.plan.issues.warning(
                    left[0].line, f"{len(left)} {noun} {words}, left out: {ids}"
                )


__all__ = ["ReadPlan", "ReadTask", "build_plan"]
