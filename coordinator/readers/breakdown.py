"""The seeds' Markdown breakdowns: the task lists planning agents write (`breakdown.md`,
`layered-tasks.md`, `implementation.md`, an issue's checklist), read into plan data.

The grammar (docs/plans.md, "The seeds' breakdowns"):

- the first ``#`` heading is the plan's title (its slug is the plan `name` unless the YAML
  block gives one); a top-level fenced ```` ```yaml ```` block carries the other settings;
- ``##``..``######`` headings like ``L0: Infrastructure``, ``Layer 1: Core``,
  ``Phase 2: Tests`` are layers (each depends on the one before), and ``Stream A: Foundation``
  headings are streams (parallel to each other, ordered inside); a heading about gates
  (``Quality Gates``, ``Gate 1: Lint``, ``Layer gates``) lists gates, one per item with a
  `` `command` ``; a criteria / checklist heading holds no tasks;
- ``- [ ]`` items are tasks: ``- [ ] T1: Create schema (database-specialist)``, with indented
  ``depends on:``, ``files:``, ``gates:`` and ``specialist:`` lines; the rest of the indented
  text is the prompt. ``- [x]`` items are done, ``- [-]`` skipped: both are left out, and
  depending on one is satisfied.

Nothing here raises for bad input: problems come back as issues, all of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from coordinator.readers.breakdown_build import (
    BreakdownDoc,
    BreakdownItem,
    Group,
    GroupKind,
    Section,
    build,
)
from coordinator.readers.details import DetailReader, split_refs
from coordinator.readers.markdown import (
    DONE_MARKS,
    OPEN_MARKS,
    PROGRESS_MARKS,
    SKIP_MARK,
    CodeBlock,
    Heading,
    Item,
    Text,
    clean_heading,
    front_matter_end,
    scan,
    split_lines,
)
from coordinator.readers.model import Issues, ParsedPlan, Status
from coordinator.readers.settings import Settings, read_settings_block

_GROUP_DEPENDS = re.compile(
    r"^(?:[-*+][ \t]+)?(?:\*\*|__)?depends[ _-]on[ \t]*(?:\*\*|__)?[ \t]*:[ \t]*"
    r"(?:\*\*|__)?[ \t]*(?P<value>.*?)[ \t]*$",
    re.IGNORECASE,
)
# Headings. A layer or stream label is a keyword and one short token: "L0", "Layer 1",
# "Phase 2.1", "Stream A" (so "Layer overview" or "Stream status" stay plain headings).
LAYER = re.compile(r"^(?P<label>L\d+|(?:layer|phase)[ \t]+(?:\d+(?:\.\d+)*|[a-z]))\b", re.I)
STREAM = re.compile(r"^(?P<label>stream[ \t]+(?:\d+(?:\.\d+)*|[a-z]))\b", re.I)
GATES_HEADING = re.compile(
    r"^(?:gates?\b|(?:layer|stream|system|task)\s+gates?\b)|\bquality\s+gates?\b", re.I
)
_LAYER_GATES_HEADING = re.compile(r"\b(?:layer|stream)s?\b", re.I)
SKIP_HEADING = re.compile(
    r"\b(?:criteria|definition\s+of\s+done|checklist|success\s+metrics|out\s+of\s+scope)\b",
    re.I,
)
_DEPENDENT = re.compile(r"\((?:[^()]*\b)?(?:dependent|sequential)\b[^()]*\)", re.I)

# Task item heads.
_ID_BACKTICKS = re.compile(r"^`(?P<id>[^`\s]+)`[ \t]*:?(?:[ \t]+|$)")
_ID_TASK_N = re.compile(r"^(?P<id>task[ \t]+\d+(?:\.\d+)*)[ \t]*:(?:[ \t]+|$)", re.I)
_ID_COLON = re.compile(r"^(?P<id>[A-Za-z0-9][A-Za-z0-9_.-]*)[ \t]*:(?:[ \t]+|$)")
_ID_SPEC_KIT = re.compile(r"^(?P<id>T\d+(?:\.\d+)*)[ \t]+")  # "- [ ] T001 [P] Create ..."
_TAGS = re.compile(r"^(?:\[[^\]\s]{1,12}\][ \t]*)+")
AT_SPECIALIST = re.compile(r"^@(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)(?:[ \t]+|$)")
_PAREN_SPECIALIST = re.compile(r"[ \t]*\(@?(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)\)[ \t]*$")
# Bracketed labels that are not checkboxes: "- [P] ...", "- [US1] ...", "- [WIP] ...".
LABEL_MARK = re.compile(r"^(?:[A-Za-z0-9]|.{2,})$")


def mark_status(mark: str) -> Status | None:
    """What a checkbox mark says, or None when it is not a checkbox mark."""
    if mark in OPEN_MARKS or mark in PROGRESS_MARKS:
        return "open"
    if mark in DONE_MARKS:
        return "done"
    if mark == SKIP_MARK:
        return "skipped"
    return None


class BreakdownParser:
    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines = split_lines(text)
        self.issues = Issues()
        self.details = DetailReader(self.issues)
        self.title: str | None = None
        self.title_line: int | None = None
        self.settings = Settings()
        self.gates: dict[str, list[tuple[Any, int]]] = {"gates": [], "layer_gates": []}
        self.items: list[BreakdownItem] = []
        self.groups: list[Group] = []
        self.group_kind: tuple[GroupKind, int] | None = None  # the kind in use, first line
        # The headings enclosing the current line, outermost first (the root: level 0).
        self.stack: list[Section] = [Section("plain", 0, None, 1)]

    def effective(self) -> Section:
        # The innermost heading that means something decides; plain subheadings inherit.
        for section in reversed(self.stack):
            if section.kind != "plain":
                return section
        return self.stack[-1]

    def parse(self) -> None:
        for block in scan(self.lines, self.issues, start=front_matter_end(self.lines)):
            if isinstance(block, CodeBlock):
                words = block.info.split()
                if words and words[0].lower() in ("yaml", "yml"):
                    read_settings_block(
                        self.settings, block.line, block.body, self.source, self.issues
                    )
            elif isinstance(block, Heading):
                self.heading(block.level, block.raw, block.line)
            elif isinstance(block, Item):
                self.item(block)
            elif isinstance(block, Text):
                self.group_depends(block)

    def group_depends(self, block: Text) -> None:
        depends = _GROUP_DEPENDS.match(block.text.strip())
        section = self.effective()
        group = section.group
        if depends is None or section.kind != "group" or group is None:
            return
        if group.items or group.refs is not None:
            return
        refs = split_refs(depends["value"], block.line, f"{group.label} depends on")
        group.refs = refs
        if not group.refs:
            self.issues.error(block.line, "`depends on:` names nothing: list tasks, or `none`")

    # -- headings

    def heading(self, level: int, raw: str, number: int) -> None:
        text = clean_heading(raw)
        if level == 1 and self.title is None:
            self.title = raw.replace("**", "").strip() or None
            self.title_line = number
            return  # the title opens no section: what follows is still "the top"
        while len(self.stack) > 1 and self.stack[-1].level >= level:
            self.stack.pop()
        in_group = any(s.kind == "group" for s in self.stack)
        in_skip = any(s.kind == "skip" for s in self.stack)
        section: Section
        if in_skip:  # a checklist's sub-headings ("### Phase 3.1" under it) are checklist too
            section = Section("skip", level, text, number)
        elif not in_group and (match := LAYER.match(text) or STREAM.match(text)):
            # A layer or stream label comes first ("L3: Quality gates" is a layer); inside a
            # layer or stream, headings are its sub-sections.
            kind: GroupKind = "layer" if LAYER.match(text) else "stream"
            section = Section(
                "group", level, text, number, group=self.group(kind, match, text, number)
            )
        elif GATES_HEADING.search(text):
            # Gates under a layer or stream, or named for them, run after each one.
            layer = in_group or bool(_LAYER_GATES_HEADING.search(text.lower().split("gate")[0]))
            gate_level: Literal["gates", "layer_gates"] = "layer_gates" if layer else "gates"
            section = Section("gates", level, text, number, gate_level=gate_level)
        elif SKIP_HEADING.search(text):
            section = Section("skip", level, text, number)
        else:
            section = Section("plain", level, text, number)
        self.stack.append(section)

    def group(self, kind: GroupKind, match: re.Match[str], text: str, number: int) -> Group:
        label = " ".join(match["label"].split())
        label = label[0].upper() + label[1:]  # "stream a" -> "Stream a", "l0" -> "L0"
        if self.group_kind is None:
            self.group_kind = (kind, number)
        elif self.group_kind[0] != kind:
            first_kind, first_line = self.group_kind
            self.issues.error(
                number,
                f"'{label}' is a {kind}, but this breakdown has {first_kind}s (line "
                f"{first_line}); use layers (each after the one before) or streams (in "
                "parallel), not both",
            )
        for other in self.groups:
            if other.kind == kind and other.label.lower() == label.lower():
                self.issues.error(number, f"{kind} '{label}' again (first on line {other.line})")
        group = Group(kind, label, number)
        group.dependent = kind == "stream" and bool(_DEPENDENT.search(text[match.end() :]))
        self.groups.append(group)
        return group

    # -- items

    def item(self, block: Item) -> None:
        section = self.effective()
        status = mark_status(block.mark)
        if status is None:
            if not LABEL_MARK.match(block.mark) and section.kind != "skip":
                self.issues.warning(
                    block.line,
                    f"'[{block.mark}]' is not a checkbox ('[ ]' to do, '[x]' done, '[-]' "
                    "skipped): the item is left out",
                )
            return  # "- [P] ..." or "- [US1] ...": a bullet with a label, not a checkbox
        if section.kind == "gates":
            found = self.details.gate_item(block.rest, block.body, block.line)
            self.gates[section.gate_level].extend((gate, block.line) for gate in found)
            return
        item = BreakdownItem(line=block.line, status=status, section=section, text=block.raw)
        self.item_head(item, block.rest)
        if section.kind != "skip":  # a checklist item's details are no concern of ours
            self.details.read_body(item, block.body, block.line + 1)
        self.items.append(item)
        if section.group is not None and section.kind == "group":
            section.group.items.append(item)

    def item_head(self, item: BreakdownItem, rest: str) -> None:
        head = rest.replace("**", "").strip()
        for pattern in (_ID_BACKTICKS, _ID_TASK_N, _ID_COLON, _ID_SPEC_KIT):
            match = pattern.match(head)
            if match is None:
                continue
            if pattern is _ID_COLON and not re.search(r"\d", match["id"]):
                continue  # "Fix: the login bug" is a title; ids have a digit ("T1:")
            item.raw_id = match["id"]
            head = head[match.end() :]
            break
        head = _TAGS.sub("", head).strip()  # spec-kit's [P], [US1]: dependencies decide here
        if match := AT_SPECIALIST.match(head):
            self.details.set_specialist(item, match["name"], item.line, marker=True)
            head = head[match.end() :]
        if match := _PAREN_SPECIALIST.search(head):
            self.details.set_specialist(item, match["name"], item.line, marker=True)
            head = head[: match.start()]
        item.title = head.strip()


def parse_breakdown(
    text: str, source: str, *, defaults: Mapping[str, Any] | None = None
) -> ParsedPlan:
    """Read a Markdown breakdown into plan data, its line map and every problem.

    `defaults` are plan settings used where the breakdown's YAML block gives none (e.g. the
    `repository` and `handoff` of a breakdown read from a GitHub issue); a `name` derived from
    the ``#`` title beats a default one.
    """
    parser = BreakdownParser(text, source)
    parser.parse()
    doc = BreakdownDoc(
        source=source,
        title=parser.title,
        title_line=parser.title_line,
        settings=parser.settings,
        gates=parser.gates,
        items=parser.items,
        groups=parser.groups,
        issues=parser.issues,
    )
    return build(doc, dict(defaults or {}))


__all__ = ["BreakdownParser", "mark_status", "parse_breakdown"]
