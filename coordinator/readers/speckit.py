"""GitHub spec-kit's `tasks.md` (`specs/NNN-feature/tasks.md`), both templates:

    ## Phase 1: Setup                          ## Phase 3.1: Setup
    - [ ] T001 Create project structure        - [ ] **T001** Create project structure
    - [ ] T002 [P] Configure linting           - [x] **T002** [P] Configure linting ...
    ## Phase 3: User Story 1 (Priority: P1)    ## Phase 3.2: Tests First (TDD)
    - [ ] T012 [P] [US1] Test ... in tests/x.py (depends on T002, T003)

Phases run in file order; inside a phase a task not marked `[P]` runs after the tasks above
it ("same file, run in order"), a `[P]` task alongside them ("different files, no
dependencies"). Any heading that holds tasks is a phase, whatever its name. The author's own
dependencies count: inline `(depends on T002, T003)`, detail lines (`Depends on: T014
(embeddings service)`), and the statements of the "Dependencies" section (`T008 blocks T009`).
`[X]`/`[x]` is done, `[-]` skipped; `[~]` (in progress) is still to do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from coordinator.progress import TaskTick, TickItem
from coordinator.readers.breakdown import (
    AT_SPECIALIST,
    GATES_HEADING,
    LABEL_MARK,
    SKIP_HEADING,
    mark_status,
)
from coordinator.readers.build import ReadPlan, ReadTask, build_plan
from coordinator.readers.details import DETAIL_KEYS, EXTRA_KEYS, DetailReader
from coordinator.readers.files import find_paths
from coordinator.readers.markdown import (
    CodeBlock,
    Heading,
    Item,
    Text,
    front_matter_end,
    scan,
    split_lines,
)
from coordinator.readers.model import Issues, ParsedPlan, Ref, Status
from coordinator.readers.order import Seq
from coordinator.readers.prose import statements
from coordinator.readers.refs import parse_refs
from coordinator.readers.settings import (
    is_settings_block,
    normalize_id,
    read_settings_block,
    slugify,
)

ID = re.compile(
    r"^(?:\[)?(?P<id>T-?\d{1,5}[a-z]?)(?:\])?(?:[ \t]*[:.\-\u2013\u2014])?(?=[ \t]|$)[ \t]*"
)
_TAG = re.compile(r"^\[(?P<tag>[^\[\]]{1,20})\][ \t]*")
_STORY = re.compile(r"^(?:US|Story[ \t]*)\d+$", re.I)
_INLINE_DEPENDS = re.compile(
    r"[ \t]*\((?P<key>depends[ \t]+on|dependencies|deps|after|requires|blocked[ \t]+by)"
    r"[ \t]*:?[ \t]*(?P<value>[^()]*)\)",
    re.I,
)
PHASE = re.compile(r"^(?P<label>phase[ \t]+[A-Za-z0-9]+(?:\.\d+)*)\b", re.I)
_DEPENDENCY_SECTION = re.compile(
    r"\b(?:dependenc(?:y|ies)|execution\s+order|order\s+of\s+execution|sequenc\w*)\b", re.I
)
_LABEL_LENGTH = 60


class _Phase:
    def __init__(self, label: str, line: int, heading: str = "") -> None:
        self.label, self.line, self.heading = label, line, heading
        self.seq = Seq("file order (not marked [P])")


class SpeckitReader:
    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines = split_lines(text)
        self.issues = Issues()
        self.details = DetailReader(self.issues, {**DETAIL_KEYS, **EXTRA_KEYS}, parse_refs)
        self.plan = ReadPlan(source, "speckit", [], self.issues, mark="X")
        self.stack: list[Heading] = []
        self.phases: list[_Phase] = []
        self.prose: list[tuple[int, str]] = []
        # Checklist and criteria sections: heading line -> (heading, items in it).
        self.skipped: dict[int, tuple[str, int]] = {}
        self.skipped_lines: dict[str, int] = {}

    def read(self) -> ReadPlan:
        blocks = scan(self.lines, self.issues, start=front_matter_end(self.lines))
        level = phase_level(blocks)
        for block in blocks:
            if isinstance(block, Heading):
                self._heading(block, level)
            elif isinstance(block, Item):
                self._item(block)
            elif isinstance(block, Text) and self._in(_DEPENDENCY_SECTION):
                self.prose.append((block.line, block.text))
            elif (
                isinstance(block, CodeBlock)
                and not self.plan.tasks
                and is_settings_block(block.info, block.body)
            ):
                read_settings_block(
                    self.plan.settings, block.line, block.body, self.source, self.issues
                )
        self._prose_dependencies()
        root = Seq("phase order")
        for phase in self.phases:
            root.add(phase.seq)
        self.plan.order = root
        for heading, count in self.skipped.values():
            self.issues.warning(
                self.skipped_lines[heading],
                f"{count} checkbox item{'s' if count > 1 else ''} under '{heading}' "
                f"{'is not a task' if count == 1 else 'are not tasks'}: criteria and "
                "checklist sections hold no tasks",
            )
        self.plan.empty_hint = " (write each task as `- [ ] T001 Title` under a phase heading)"
        return self.plan

    def _in(self, pattern: re.Pattern[str]) -> bool:
        return any(pattern.search(h.text) for h in self.stack)

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
            label = unique_label(label[:_LABEL_LENGTH], block.line, [p.label for p in self.phases])
            self.phases.append(_Phase(label, block.line, block.text))

    def _item(self, block: Item) -> None:
        skip = next((h for h in self.stack if SKIP_HEADING.search(h.text)), None)
        if skip is not None:
            heading, count = self.skipped.get(skip.line, (skip.text, 0))
            self.skipped[skip.line] = (heading, count + 1)
            self.skipped_lines.setdefault(heading, block.line)
            return
        if self._in(_DEPENDENCY_SECTION):
            return
        status = mark_status(block.mark)
        if status is None:
            if not LABEL_MARK.match(block.mark):
                self.issues.warning(
                    block.line,
                    f"'[{block.mark}]' is not a checkbox ('[ ]' to do, '[X]' done, '[-]' "
                    "skipped): the item is left out",
                )
            return
        if self._in(GATES_HEADING):
            found = self.details.gate_item(block.rest, block.body, block.line)
            self.plan.gates.setdefault("gates", []).extend((g, block.line) for g in found)
            return
        task = self._task(block, status)
        if not self.phases:  # tasks above the first phase heading: a phase of their own
            self.phases.append(_Phase("Tasks", block.line))
        phase = self.phases[-1]
        task.group, task.group_line = phase.label, phase.line
        phase.seq.add(task.id, task.parallel)
        if phase.heading and not task.context:
            task.context = f"Part of: {phase.heading}"
        self.plan.tasks.append(task)

    def _task(self, block: Item, status: Status) -> ReadTask:
        head = block.rest.replace("**", "").strip()
        task = ReadTask(line=block.line, status=status)
        raw_id = None
        parallel, story = False, None
        while head:
            if raw_id is None and (match := ID.match(head)):
                raw_id = match["id"].replace("-", "")
            elif match := _TAG.match(head):
                tag = match["tag"].strip()
                parallel = parallel or tag.upper() == "P"
                story = story or (tag.upper() if _STORY.match(tag) else None)
            elif match := AT_SPECIALIST.match(head):
                self.details.set_specialist(task, match["name"], block.line, marker=True)
            else:
                break
            head = head[match.end() :]
        for dep in _INLINE_DEPENDS.finditer(head):
            why = f"{dep['key'].lower()} inline (line {block.line})"
            task.refs = (task.refs or []) + parse_refs(dep["value"], block.line, why)
        title = _INLINE_DEPENDS.sub("", head).strip()
        task.title = title or head.strip()
        task.id = normalize_id(raw_id) if raw_id else (slugify(task.title) or f"line-{block.line}")
        task.parallel = parallel
        task.files = [(path, block.line) for path in find_paths(task.title)]
        self.details.read_body(task, block.body, block.line + 1)
        if story:
            task.context = f"User story {story}" + (
                f", in: {self.phases[-1].heading}"
                if self.phases and self.phases[-1].heading
                else ""
            )
        task.tick = TaskTick(items=[TickItem(line=block.line, text=block.raw)])
        return task

    def _prose_dependencies(self) -> None:
        by_id = {t.id: t for t in self.plan.tasks}
        for line, text in self.prose:
            for waiting, waited_for in statements(text):
                for task_id in waiting:
                    task = by_id.get(task_id)
                    if task is None:
                        continue
                    refs = [
                        Ref(dep, line, f"Dependencies section (line {line})", inferred=True)
                        for dep in waited_for
                        if dep != task_id and dep in by_id
                    ]
                    task.refs = (task.refs or []) + refs


def unique_label(label: str, line: int, taken: list[str]) -> str:
    """A phase's name in the plan (its layer): two headings alike stay two layers."""
    if not label:
        return f"line {line}"
    return label if label not in taken else f"{label} (line {line})"


def phase_level(blocks: list[Any]) -> int:
    """The heading level of the phases: the outermost (below the title) holding tasks."""
    stack: list[Heading] = []
    levels: list[int] = []
    for block in blocks:
        if isinstance(block, Heading):
            while stack and stack[-1].level >= block.level:
                stack.pop()
            stack.append(block)
        elif isinstance(block, Item) and stack:
            below_title = [h.level for h in stack if h.level > 1]
            if below_title:
                levels.append(min(below_title))
    return min(levels) if levels else 2


def read_speckit(
    text: str,
    source: str,
    *,
    defaults: Mapping[str, Any] | None = None,
    name_hint: str | None = None,
) -> ParsedPlan:
    reader = SpeckitReader(text, source)
    plan = reader.read()
    plan.name_hint = name_hint
    return build_plan(plan, defaults)


__all__ = ["PHASE", "phase_level", "read_speckit", "unique_label"]
