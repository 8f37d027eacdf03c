"""From a parsed seeds' breakdown (`coordinator.readers.breakdown`) to plan data: which items
are tasks, their ids, their dependencies (the layer and stream rules), the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from coordinator.loader import PathKey
from coordinator.progress import PlanSource, TaskTick, TickItem
from coordinator.readers.model import Details, Issues, ParsedPlan, Ref, Status, TaskLine
from coordinator.readers.settings import (
    Settings,
    add_gates,
    normalize_id,
    plan_settings,
    slugify,
)

GroupKind = Literal["layer", "stream"]
NO_DEPENDENCIES = {"none", "nothing", "-", "n/a", "no"}


@dataclass
class Group:
    kind: GroupKind
    label: str
    line: int
    dependent: bool = False
    refs: list[Ref] | None = None  # a `depends on:` line right under the heading
    items: list[BreakdownItem] = field(default_factory=list)


@dataclass
class Section:
    """Where an item sits: decides whether it is a task, a gate, or neither."""

    kind: Literal["plain", "group", "gates", "skip"]
    level: int
    heading: str | None  # None before the first heading
    line: int
    group: Group | None = None
    gate_level: Literal["gates", "layer_gates"] = "gates"


@dataclass
class BreakdownItem(Details):
    line: int = 0
    status: Status = "open"
    section: Section | None = None
    raw_id: str | None = None
    title: str = ""
    text: str = ""  # the item's line as written (to tick it back)
    id: str = ""

    @property
    def ticked(self) -> bool:
        return self.status != "open"


@dataclass
class BreakdownDoc:
    source: str
    title: str | None
    title_line: int | None
    settings: Settings
    gates: dict[str, list[tuple[Any, int]]]
    items: list[BreakdownItem]
    groups: list[Group]
    issues: Issues


def build(doc: BreakdownDoc, defaults: dict[str, Any]) -> ParsedPlan:
    return _Builder(doc, defaults).build()


class _Builder:
    def __init__(self, doc: BreakdownDoc, defaults: dict[str, Any]) -> None:
        self.p = doc
        self.defaults = defaults
        self.lines: dict[PathKey, int] = {}
        self.tasks: list[BreakdownItem] = []  # the items that are tasks, done ones too
        self.by_id: dict[str, BreakdownItem] = {}
        self.by_title: dict[str, BreakdownItem] = {}
        self.by_group: dict[str, Group] = {}

    def build(self) -> ParsedPlan:
        p = self.p
        self._select_tasks()
        self._assign_ids()
        for item in self.tasks:
            self.by_id.setdefault(item.id, item)
            if item.title:
                self.by_title.setdefault(" ".join(item.title.split()).casefold(), item)
        for group in p.groups:
            self.by_group.setdefault(group.label.casefold(), group)
        data = plan_settings(p.settings, p.title, p.title_line, self.defaults, self.lines)
        add_gates(data, p.gates, self.lines)
        pending = [item for item in self.tasks if not item.ticked]
        data["tasks"] = [self._task(k, item) for k, item in enumerate(pending)]
        self.lines[("tasks",)] = (pending[0].line if pending else None) or p.title_line or 1
        hint = self._report_left_out(pending)
        return ParsedPlan(
            source=p.source,
            title=p.title,
            data=data,
            lines=self.lines,
            issues=sorted(p.issues.items, key=lambda issue: issue.line or 0),
            tasks=[
                TaskLine(
                    id=item.id,
                    title=item.title,
                    line=item.line,
                    ticked=item.ticked,
                    group=item.section.group.label if item.section and item.section.group else None,
                    status=item.status,
                )
                for item in self.tasks
            ],
            no_tasks_hint=hint,
            reader="breakdown",
            plan_source=PlanSource(
                reader="breakdown",
                tasks={
                    item.id: TaskTick(items=[TickItem(line=item.line, text=item.text)])
                    for item in pending
                    if item.text
                },
            ),
            soft_specialists=frozenset(i.id for i in pending if i.specialist_marker),
        )

    def _report_left_out(self, pending: list[BreakdownItem]) -> str:
        done = [item for item in self.tasks if item.status == "done"]
        skipped = [item for item in self.tasks if item.status == "skipped"]
        if not pending:
            if done or skipped:
                return ""  # nothing is left to do: not an error
            if self.p.items:
                return " (no checkbox item is under a heading that holds tasks: see the warnings)"
            return " (write each task as a checkbox item: `- [ ] T1: Title`)"
        for left, why in (
            (done, "ticked `- [x]` {} left out as done"),
            (skipped, "skipped `- [-]` {} left out"),
        ):
            if left:
                ids = ", ".join(item.id for item in left)
                noun = "tasks" if len(left) > 1 else "task"
                self.p.issues.warning(left[0].line, f"{len(left)} {why.format(noun)}: {ids}")
        return ""

    # -- which items are tasks

    def _select_tasks(self) -> None:
        grouped = bool(self.p.groups)
        left_out: dict[int, list[BreakdownItem]] = {}
        for item in self.p.items:
            assert item.section is not None
            kind = item.section.kind
            if kind == "group" or (kind == "plain" and not grouped):
                self.tasks.append(item)
            else:
                left_out.setdefault(id(item.section), []).append(item)
        for items in left_out.values():
            section = items[0].section
            assert section is not None
            where = f"under '{section.heading}'" if section.heading else "above the first section"
            count = f"{len(items)} checkbox item{'s' if len(items) > 1 else ''}"
            if section.kind == "skip":
                why = "criteria and checklist sections hold no tasks"
            else:
                kinds = f"{self.p.groups[0].kind}s"
                why = f"in a breakdown with {kinds}, tasks go under a {kinds[:-1]} heading"
            self.p.issues.warning(
                items[0].line,
                f"{count} {where} {'is' if len(items) == 1 else 'are'} "
                f"not {'a task' if len(items) == 1 else 'tasks'}: {why}",
            )

    def _assign_ids(self) -> None:
        explicit: dict[str, BreakdownItem] = {}
        for item in self.tasks:
            if item.raw_id is None:
                continue
            item.id = normalize_id(item.raw_id)
            first = explicit.get(item.id)
            if first is None:
                explicit[item.id] = item
            elif first.ticked or item.ticked:
                # Two pending tasks are left to validation, which reports them like YAML's.
                self.p.issues.error(
                    item.line, f"duplicate task id '{item.id}' (first used on line {first.line})"
                )
        taken = set(explicit)
        for item in self.tasks:
            if item.raw_id is not None:
                continue
            base = slugify(item.title) or "task"
            if base.startswith("coord-"):  # reserved for coord's own work
                base = f"task-{base}"
            candidate, n = base, 1
            while candidate in taken:
                n += 1
                candidate = f"{base}-{n}"
            item.id = candidate
            taken.add(candidate)

    # -- tasks

    def _task(self, k: int, item: BreakdownItem) -> dict[str, Any]:
        path: PathKey = ("tasks", k)
        task: dict[str, Any] = {"id": item.id, "title": item.title}
        for key in ((), ("id",), ("title",)):
            self.lines[(*path, *key)] = item.line
        if item.specialist is not None:
            task["specialist"] = item.specialist
            self.lines[(*path, "specialist")] = item.specialist_line
        if item.prompt:
            task["prompt"] = item.prompt
            if item.prompt_line is not None:
                self.lines[(*path, "prompt")] = item.prompt_line
        section = item.section
        group = section.group if section is not None and section.kind == "group" else None
        if group is not None:
            task["layer"] = group.label
            self.lines[(*path, "layer")] = group.line
        depends = self._dependencies(item, group)
        if depends is not None:
            task["depends_on"] = [dep for dep, _ in depends]
            self.lines[(*path, "depends_on")] = (
                item.refs_line if item.refs is not None else depends[0][1] if depends else item.line
            )
            for j, (_, line) in enumerate(depends):
                self.lines[(*path, "depends_on", j)] = line
        for name, values in (("files", item.files), ("gates", item.gates)):
            if values:
                task[name] = [value for value, _ in values]
                self.lines[(*path, name)] = values[0][1]
                for j, (_, line) in enumerate(values):
                    self.lines[(*path, name, j)] = line
        return task

    def _dependencies(
        self, item: BreakdownItem, group: Group | None
    ) -> list[tuple[str, int]] | None:
        """The task's explicit `depends_on` with a line for each, or None for the layer rule."""
        own = None if item.refs is None else self._resolve(item.refs)
        if group is None:
            return own
        if group.kind == "layer":
            if own is not None:
                return own
            return None if group.refs is None else self._resolve(group.refs)
        # A stream: after the stream's previous unfinished task, or else after what the
        # stream itself waits for; plus the task's own.
        before = group.items[: group.items.index(item)]
        previous = next((other for other in reversed(before) if not other.ticked), None)
        chain: list[tuple[str, int]]
        if previous is not None:
            chain = [(previous.id, item.line)]
        else:
            chain = self._resolve(group.refs) if group.refs is not None else []
            if group.dependent:
                earlier = [g for g in self.p.groups if g.kind == "stream" and g.line < group.line]
                chain += [(task_id, group.line) for g in earlier for task_id in _waits_for(g)]
        return _unique([*chain, *(own or [])])

    def _resolve(self, refs: list[Ref]) -> list[tuple[str, int]]:
        if len(refs) == 1 and refs[0].text.casefold() in NO_DEPENDENCIES:
            return []
        out: list[tuple[str, int]] = []
        for ref in refs:
            key = normalize_id(ref.text)
            target = self.by_id.get(key) or self.by_title.get(" ".join(ref.text.split()).casefold())
            if target is not None:
                if not target.ticked:  # a finished task is done: nothing to wait for
                    out.append((target.id, ref.line))
                continue
            group = self.by_group.get(" ".join(ref.text.split()).casefold())
            if group is not None:
                out += [(task_id, ref.line) for task_id in _waits_for(group)]
                continue
            out.append((key, ref.line))  # unknown: validation says so, at this line
        return out


def _waits_for(group: Group) -> list[str]:
    """What waiting for a whole group means: every unfinished task of a layer; the last
    unfinished task of a stream (which waits for the ones before it)."""
    pending = [item.id for item in group.items if not item.ticked]
    return pending[-1:] if group.kind == "stream" else pending


def _unique(pairs: list[tuple[str, int]]) -> list[tuple[str, int]]:
    seen: set[str] = set()
    out = []
    for task_id, line in pairs:
        if task_id not in seen:
            seen.add(task_id)
            out.append((task_id, line))
    return out


__all__ = ["BreakdownDoc", "BreakdownItem", "Group", "GroupKind", "Section", "build"]
