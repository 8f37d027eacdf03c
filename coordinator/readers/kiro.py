"""Kiro's and Agent OS's `tasks.md` (`.kiro/specs/*/tasks.md`, `.agent-os/specs/*/tasks.md`):
numbered tasks, sub-tasks numbered under them (indented or not), details as bullets.

    - [ ] 2. Implement core data models
      - [ ] 2.1 Create data model classes in `models.py`
        - Add type hints and validation methods
        - _Requirements: 1.1, 2.1_
      - [ ]* 2.2 Write property test for Report JSON round-trip

A task with sub-tasks is their container: its sub-tasks are the tasks (its own details are
their context), and it is ticked when they all are. Tasks run in file order, sub-tasks too,
except those marked `(P)` (cc-sdd) which run alongside their siblings. `- [ ]*` marks an
optional task: left out, and said so. Kiro marks a task in progress `[-]`: still to do.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from coordinator.progress import TaskTick, TickItem
from coordinator.readers.breakdown import AT_SPECIALIST, LABEL_MARK, SKIP_HEADING
from coordinator.readers.build import ReadPlan, ReadTask, build_plan
from coordinator.readers.details import DETAIL_KEYS, EXTRA_KEYS, DetailReader
from coordinator.readers.files import find_paths
from coordinator.readers.markdown import (
    DONE_MARKS,
    ITEM,
    CodeBlock,
    Heading,
    Item,
    body_end,
    front_matter_end,
    indent_width,
    scan,
    split_lines,
)
from coordinator.readers.model import Issues, ParsedPlan, Status
from coordinator.readers.order import Seq
from coordinator.readers.refs import parse_refs
from coordinator.readers.settings import (
    is_settings_block,
    normalize_id,
    read_settings_block,
    slugify,
)
from coordinator.readers.speckit import PHASE, phase_level, unique_label

NUMBER = re.compile(r"^(?P<number>\d+(?:\.\d+)*)\.?(?=[ \t]|$)[ \t]*")
_PARALLEL = re.compile(r"^\((?:P|parallel)\)[ \t]*", re.I)
_LABEL_LENGTH = 60


@dataclass
class _Entry:
    """A checkbox item: a task, or the container of its sub-tasks."""

    item: Item
    number: str | None
    title: str
    status: Status
    parallel: bool
    body: list[str]  # its own lines (sub-items blanked out), for details and prompt
    children: list[_Entry] = field(default_factory=list)


class KiroReader:
    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines = split_lines(text)
        self.issues = Issues()
        self.details = DetailReader(self.issues, {**DETAIL_KEYS, **EXTRA_KEYS}, parse_refs)
        self.plan = ReadPlan(source, "kiro", [], self.issues)
        self.phases: list[tuple[str, int, list[_Entry]]] = []
        self.stack: list[Heading] = []

    def read(self) -> ReadPlan:
        blocks = scan(self.lines, self.issues, start=front_matter_end(self.lines))
        level = phase_level(blocks)
        for block in blocks:
            if isinstance(block, Heading):
                self._heading(block, level)
            elif isinstance(block, Item) and not any(
                SKIP_HEADING.search(h.text) for h in self.stack
            ):
                entry = self._entry(block)
                if entry is not None:
                    self._place(entry)
            elif (
                isinstance(block, CodeBlock)
                and not any(entries for _, _, entries in self.phases)
                and is_settings_block(block.info, block.body)
            ):
                read_settings_block(
                    self.plan.settings, block.line, block.body, self.source, self.issues
                )
        root = Seq("phase order")
        for label, line, entries in self.phases:
            root.add(self._sequence(entries, label, line, None))
        self.plan.order = root
        self.plan.empty_hint = " (write each task as a numbered item: `- [ ] 1. Title`)"
        return self.plan

    def _heading(self, block: Heading, level: int) -> None:
        if block.level == 1 and self.plan.title is None:
            self.plan.title = block.raw.replace("**", "").strip() or None
            self.plan.title_line = block.line
            return
        while self.stack and self.stack[-1].level >= block.level:
            self.stack.pop()
        self.stack.append(block)
        if block.level == level:
            match = PHASE.match(block.text)
            label = " ".join(match["label"].split()).title() if match else block.text
            taken = [name for name, _, _ in self.phases]
            self.phases.append(
                (unique_label(label[:_LABEL_LENGTH], block.line, taken), block.line, [])
            )

    def _entry(self, block: Item) -> _Entry | None:
        """The item and its sub-items (indented ones), or None when it is not a checkbox."""
        mark = block.mark
        status: Status
        if mark in DONE_MARKS:
            status = "done"
        elif mark in (" ", "", "-", "~", "/"):  # Kiro marks the task it works on `[-]`
            status = "optional" if block.star else "open"
        else:
            if not LABEL_MARK.match(mark):
                self.issues.warning(block.line, f"'[{mark}]' is not a checkbox: left out")
            return None
        head = block.rest.replace("**", "").strip()
        number = None
        if match := NUMBER.match(head):
            number, head = match["number"], head[match.end() :]
        parallel = False
        if match := _PARALLEL.match(head):
            parallel, head = True, head[match.end() :]
        body, children = self._split(block)
        entry = _Entry(block, number, head.strip(), status, parallel, body)
        for child in children:
            if (sub := self._entry(child)) is not None:
                if entry.status == "optional" and sub.status == "open":
                    sub.status = "optional"
                entry.children.append(sub)
        return entry

    def _split(self, block: Item) -> tuple[list[str], list[Item]]:
        """The item's own body lines (sub-items blanked) and its sub-items."""
        body = list(block.body)
        children: list[Item] = []
        j = 0
        while j < len(body):
            match = ITEM.match(body[j])
            if match is None:
                j += 1
                continue
            end = body_end(body, j, indent_width(match["indent"]), self.issues, block.line + 1)
            children.append(
                Item(
                    line=block.line + 1 + j,
                    indent=indent_width(match["indent"]),
                    marker=match["marker"],
                    mark=match["mark"],
                    star=bool(match["star"]),
                    rest=match["rest"],
                    raw=body[j],
                    body=body[j + 1 : end],
                )
            )
            body[j:end] = [""] * (end - j)
            j = end
        return body, children

    def _place(self, entry: _Entry) -> None:
        """Flat sub-tasks (`- [ ] 1.1` under `- [ ] 1.` at the same indentation, as cc-sdd
        writes them) join their parent."""
        if not self.phases:
            self.phases.append(("Tasks", entry.item.line, []))
        entries = self.phases[-1][2]
        parent = entries[-1] if entries else None
        if (
            parent is not None
            and entry.number is not None
            and parent.number is not None
            and entry.number.startswith(parent.number + ".")
        ):
            parent.children.append(entry)
        else:
            entries.append(entry)

    def _sequence(self, entries: list[_Entry], label: str, line: int, parent: _Entry | None) -> Seq:
        seq = Seq(
            "file order (sub-tasks in order)" if parent else "file order (Kiro runs tasks in order)"
        )
        for entry in entries:
            if entry.children:
                seq.add(self._sequence(entry.children, label, line, entry), entry.parallel)
            else:
                seq.add(self._task(entry, label, line, parent).id, entry.parallel)
        return seq

    def _task(self, entry: _Entry, label: str, line: int, parent: _Entry | None) -> ReadTask:
        block = entry.item
        task = ReadTask(line=block.line, status=entry.status, group=label, group_line=line)
        task.title = entry.title or f"Task {entry.number}"
        task.id = (
            normalize_id(entry.number)
            if entry.number
            else (slugify(task.title) or f"line-{block.line}")
        )
        if match := AT_SPECIALIST.match(task.title):
            self.details.set_specialist(task, match["name"], block.line, marker=True)
            task.title = task.title[match.end() :].strip()
        self.details.read_body(task, entry.body, block.line + 1)
        task.parallel = entry.parallel
        task.files = [(p, block.line) for p in find_paths("\n".join([task.title, *entry.body]))]
        tick = TaskTick(items=[TickItem(line=block.line, text=block.raw)])
        if parent is not None:
            siblings = [c for c in parent.children if c.status != "optional"]
            tick.parent = TickItem(line=parent.item.line, text=parent.item.raw)
            tick.children = [TickItem(line=c.item.line, text=c.item.raw) for c in siblings]
            own = textwrap.dedent("\n".join(line for line in parent.body if line.strip()))
            task.context = f"Part of {parent.number or ''} {parent.title}".replace("  ", " ")
            if own:
                task.context += f":\n{own}"
        task.tick = tick
        self.plan.tasks.append(task)
        return task


def read_kiro(
    text: str,
    source: str,
    *,
    defaults: Mapping[str, Any] | None = None,
    name_hint: str | None = None,
) -> ParsedPlan:
    plan = KiroReader(text, source).read()
    plan.name_hint = name_hint
    return build_plan(plan, defaults)


__all__ = ["NUMBER", "read_kiro"]
