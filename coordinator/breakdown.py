"""Markdown breakdowns as plans: the task lists agent prompts write, read into plan data.

`parse_breakdown` turns a Markdown breakdown into the same raw data a YAML plan file gives
(plus a map from data paths to Markdown lines), so it goes through the same `Plan` model and
the same validation rules, and every problem is reported at its Markdown line. The grammar
(README, "Markdown breakdown plans"):

- the first ``#`` heading is the plan's title (its slug is the plan `name` unless the YAML
  block gives one); a top-level fenced ```` ```yaml ```` block carries the other settings;
- ``##``..``######`` headings like ``L0: Infrastructure``, ``Layer 1: Core``,
  ``Phase 2: Tests`` are layers (each depends on the one before), and ``Stream A: Foundation``
  headings are streams (parallel to each other, ordered inside); a heading about gates
  (``Quality Gates``, ``Gate 1: Lint``, ``Layer gates``) lists gates, one per item with a
  `` `command` ``; a criteria / checklist heading holds no tasks;
- ``- [ ]`` items are tasks: ``- [ ] T1: Create schema (database-specialist)``, with indented
  ``depends on:``, ``files:``, ``gates:`` and ``specialist:`` lines; the rest of the indented
  text is the prompt. ``- [x]`` items are done: left out of the plan, and depending on one is
  satisfied.

Nothing here raises for bad input: problems come back as `LoadIssue`s, all of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from coordinator.loader import LoadedPlan, LoadIssue, PathKey, load_plan_text

GroupKind = Literal["layer", "stream"]

# A plan name and a generated task id are slugs of a title, kept well under the 64 allowed.
_SLUG_LENGTH = 48
# A gate named after its command keeps the command when it is this short.
_GATE_NAME_LENGTH = 40

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_HEADING = re.compile(r"^ {0,3}(?P<hashes>#{1,6})(?:[ \t]+(?P<text>.*?))?(?:[ \t]+#+)?[ \t]*$")
_ITEM = re.compile(
    r"^(?P<indent>[ \t]*)(?P<marker>[-*+]|\d{1,9}[.)])[ \t]+"
    r"\[(?P<mark>[^\]]{0,3})\](?=[ \t]|$)[ \t]*(?P<rest>.*)$"
)
_BULLET = re.compile(r"^(?P<indent>[ \t]*)(?:[-*+]|\d{1,9}[.)])[ \t]+(?P<rest>.*)$")
_DETAIL = re.compile(
    r"^(?:[-*+][ \t]+)?(?:\*\*|__)?(?P<key>depends[ _-]on|dependencies|files|gates?|"
    r"specialist|agent)[ \t]*(?:\*\*|__)?[ \t]*:[ \t]*(?:\*\*|__)?[ \t]*(?P<value>.*?)[ \t]*$",
    re.IGNORECASE,
)
_GROUP_DEPENDS = re.compile(
    r"^(?:[-*+][ \t]+)?(?:\*\*|__)?depends[ _-]on[ \t]*(?:\*\*|__)?[ \t]*:[ \t]*"
    r"(?:\*\*|__)?[ \t]*(?P<value>.*?)[ \t]*$",
    re.IGNORECASE,
)
_DETAIL_KEYS = {
    "depends on": "depends_on",
    "depends_on": "depends_on",
    "depends-on": "depends_on",
    "dependencies": "depends_on",
    "files": "files",
    "gate": "gates",
    "gates": "gates",
    "specialist": "specialist",
    "agent": "specialist",
}

# Headings. A layer or stream label is a keyword and one short token: "L0", "Layer 1",
# "Phase 2.1", "Stream A" (so "Layer overview" or "Stream status" stay plain headings).
_LAYER = re.compile(r"^(?P<label>L\d+|(?:layer|phase)[ \t]+(?:\d+(?:\.\d+)*|[a-z]))\b", re.I)
_STREAM = re.compile(r"^(?P<label>stream[ \t]+(?:\d+(?:\.\d+)*|[a-z]))\b", re.I)
_GATES_HEADING = re.compile(
    r"^(?:gates?\b|(?:layer|stream|system|task)\s+gates?\b)|\bquality\s+gates?\b", re.I
)
_LAYER_GATES_HEADING = re.compile(r"\b(?:layer|stream)s?\b", re.I)
_SKIP_HEADING = re.compile(
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
_AT_SPECIALIST = re.compile(r"^@(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)(?:[ \t]+|$)")
_PAREN_SPECIALIST = re.compile(r"[ \t]*\(@?(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)\)[ \t]*$")
_SPECIALIST_NAME = re.compile(r"^@?(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,63})$")
_REF_SPLIT = re.compile(r"[ \t]*[,;&][ \t]*|[ \t]+and[ \t]+", re.I)
_NO_DEPENDENCIES = {"none", "nothing", "-", "n/a", "no"}
_EMPTY_OUTPUT = re.compile(
    r"\b(?:returns?\s+empty|empty\s+output|no\s+output|prints\s+nothing|outputs\s+nothing)\b",
    re.I,
)
_BACKTICK_RUN = re.compile(r"`+")


@dataclass(frozen=True)
class TaskLine:
    """Where a task of the breakdown is: its `- [ ]` item's line, and whether it is ticked."""

    id: str
    title: str
    line: int
    ticked: bool
    group: str | None = None


@dataclass
class ParsedBreakdown:
    """A Markdown breakdown read into plan data.

    `data` is what a YAML plan would hold (ticked tasks left out); `lines` maps data paths
    (``("tasks", 2, "depends_on", 0)``) to Markdown lines; `issues` holds every problem found
    while reading (errors and warnings); `tasks` lists every task item, ticked ones too, by
    id with its checkbox line: what ticking a finished task's box needs.
    """

    source: str
    title: str | None
    data: dict[str, Any]
    lines: dict[PathKey, int] = field(default_factory=dict)
    issues: list[LoadIssue] = field(default_factory=list)
    tasks: list[TaskLine] = field(default_factory=list)
    # Appended to "the plan has no tasks" when there are none to run.
    no_tasks_hint: str = ""

    @property
    def checkbox_lines(self) -> dict[str, int]:
        """Task id -> line (1-based) of its checkbox item; the first item wins for a
        duplicate id (which is reported)."""
        out: dict[str, int] = {}
        for task in self.tasks:
            out.setdefault(task.id, task.line)
        return out

    @property
    def ticked(self) -> list[str]:
        """Ids of the tasks already ticked ``- [x]``: done, so left out of the plan."""
        return [task.id for task in self.tasks if task.ticked]

    def to_loaded(self) -> LoadedPlan:
        return LoadedPlan(
            self.source,
            self.data,
            self.lines,
            list(self.issues),
            no_tasks_hint=self.no_tasks_hint,
            breakdown=self,
        )


# --- small helpers -----------------------------------------------------------------------------


def slugify(text: str, max_length: int = _SLUG_LENGTH) -> str:
    """``"Add a /v1/faces endpoint!"`` -> ``"add-a-v1-faces-endpoint"`` (may be empty)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if len(slug) > max_length:
        cut = slug[:max_length]
        slug = (cut.rsplit("-", 1)[0] if "-" in cut else cut).strip("-")
    return slug


def normalize_id(text: str) -> str:
    """How a task id written in Markdown becomes a plan id: ``T1`` -> ``t1``,
    ``Task 12`` -> ``task-12``, `` `schema` `` -> ``schema``."""
    return re.sub(r"\s+", "-", text.strip().strip("`").strip()).lower()


def _indent_width(line: str) -> int:
    prefix = line[: len(line) - len(line.lstrip(" \t"))]
    return len(prefix.expandtabs(4))


def _dedent(line: str, width: int) -> str:
    """`line` without its first `width` columns of indentation (tabs count 4)."""
    stripped = line.lstrip(" \t")
    prefix = line[: len(line) - len(stripped)].expandtabs(4)
    return prefix[width:] + stripped if len(prefix) >= width else stripped


def _clean_heading(text: str) -> str:
    """Heading text without bold markers and leading emoji or symbols."""
    text = text.replace("**", "").strip()
    return re.sub(r"^[^\w`(\[]+", "", text).strip()


def _gate_name(command: str) -> str:
    command = " ".join(command.split())
    if len(command) <= _GATE_NAME_LENGTH:
        return command
    return command[: _GATE_NAME_LENGTH - 3].rstrip() + "..."


def _is_blank(line: str) -> bool:
    return not line.strip()


# --- the document's parts ----------------------------------------------------------------------


@dataclass
class _Ref:
    text: str
    line: int


@dataclass
class _Group:
    kind: GroupKind
    label: str
    line: int
    dependent: bool = False
    refs: list[_Ref] | None = None  # a `depends on:` line right under the heading
    items: list[_Item] = field(default_factory=list)


@dataclass
class _Section:
    """Where an item sits: decides whether it is a task, a gate, or neither."""

    kind: Literal["plain", "group", "gates", "skip"]
    level: int
    heading: str | None  # None before the first heading
    line: int
    group: _Group | None = None
    gate_level: Literal["gates", "layer_gates"] = "gates"


@dataclass
class _Item:
    line: int
    ticked: bool
    section: _Section
    raw_id: str | None = None
    title: str = ""
    specialist: str | None = None
    specialist_line: int = 0
    refs: list[_Ref] | None = None  # None: no `depends on:` line
    refs_line: int = 0
    files: list[tuple[str, int]] = field(default_factory=list)
    gates: list[tuple[Any, int]] = field(default_factory=list)
    prompt: str = ""
    prompt_line: int | None = None
    id: str = ""


@dataclass
class _Fence:
    char: str
    length: int
    line: int

    def closes(self, line: str) -> bool:
        stripped = line.strip()
        return len(stripped) >= self.length and set(stripped) == {self.char}


def _open_fence(line: str, *, top_level: bool) -> tuple[_Fence, str] | None:
    stripped = line.lstrip(" \t")
    if top_level and _indent_width(line) > 3:
        return None
    match = _FENCE.match(stripped)
    if match is None:
        return None
    fence = match["fence"]
    info = match["info"].strip()
    if fence[0] == "`" and "`" in info:  # not a fence: inline code
        return None
    return _Fence(fence[0], len(fence), 0), info


# --- the parser --------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.source = source
        # split("\n"), not splitlines(): line numbers must match what editors and GitHub show.
        self.lines = [line.removesuffix("\r") for line in text.split("\n")]
        self.issues: list[LoadIssue] = []
        self.title: str | None = None
        self.title_line: int | None = None
        self.settings: dict[str, Any] = {}
        self.settings_lines: dict[PathKey, int] = {}
        self.settings_line: int | None = None
        self.gates: dict[str, list[tuple[Any, int]]] = {"gates": [], "layer_gates": []}
        self.items: list[_Item] = []
        self.groups: list[_Group] = []
        self.group_kind: tuple[GroupKind, int] | None = None  # the kind in use, first line
        # The headings enclosing the current line, outermost first (the root: level 0).
        self.stack: list[_Section] = [_Section("plain", 0, None, 1)]

    # -- problems

    def error(self, line: int | None, message: str, path: PathKey = ()) -> None:
        self.issues.append(LoadIssue(message, path, line))

    def warning(self, line: int | None, message: str, path: PathKey = ()) -> None:
        self.issues.append(LoadIssue(message, path, line, severity="warning"))

    # -- sections

    def _effective(self) -> _Section:
        # The innermost heading that means something decides; plain subheadings inherit.
        for section in reversed(self.stack):
            if section.kind != "plain":
                return section
        return self.stack[-1]

    # -- the walk

    def parse(self) -> None:
        i = self._front_matter()
        n = len(self.lines)
        while i < n:
            line = self.lines[i]
            number = i + 1
            if line.lstrip().startswith("<!--"):
                i = self._skip_comment(i)
                continue
            fence = _open_fence(line, top_level=True)
            if fence is not None:
                i = self._top_level_fence(i, fence[0], fence[1])
                continue
            heading = _HEADING.match(line)
            if heading is not None:
                self._heading(len(heading["hashes"]), heading["text"] or "", number)
                i += 1
                continue
            item = _ITEM.match(line)
            if item is not None:
                i = self._item(i, item)
                continue
            depends = _GROUP_DEPENDS.match(line.strip())
            section = self._effective()
            if (
                depends is not None
                and section.kind == "group"
                and section.group is not None
                and not section.group.items
                and section.group.refs is None
            ):
                section.group.refs = self._refs(depends["value"], number)
                if not section.group.refs:
                    self.error(number, "`depends on:` names nothing: list tasks, or `none`")
            i += 1

    def _front_matter(self) -> int:
        """YAML front matter (``---`` ... ``---`` at the top) is not plan settings: skipped."""
        if not self.lines or self.lines[0].strip() != "---":
            return 0
        for i in range(1, len(self.lines)):
            if self.lines[i].strip() in ("---", "..."):
                return i + 1
        return 0  # no closing line: a thematic break, not front matter

    def _skip_comment(self, i: int) -> int:
        for j in range(i, len(self.lines)):
            start = self.lines[j].find("<!--") + 4 if j == i else 0
            if "-->" in self.lines[j][start:]:
                return j + 1
        return len(self.lines)

    def _find_close(self, fence: _Fence, start: int) -> int | None:
        for j in range(start, len(self.lines)):
            if fence.closes(self.lines[j]):
                return j
        return None

    def _top_level_fence(self, i: int, fence: _Fence, info: str) -> int:
        fence.line = i + 1
        close = self._find_close(fence, i + 1)
        if close is None:
            self.error(
                fence.line,
                f"this {fence.char * fence.length} block is never closed: everything after "
                "it would be code",
            )
            return len(self.lines)
        language = info.split()[0].lower() if info.split() else ""
        if language in ("yaml", "yml"):
            self._settings_block(fence.line, self.lines[i + 1 : close])
        return close + 1

    # -- settings

    def _settings_block(self, fence_line: int, body: list[str]) -> None:
        if self.settings_line is not None:
            self.error(
                fence_line,
                f"a second YAML settings block (the first is on line {self.settings_line}); "
                "merge them, or indent an example under a task to make it part of its prompt",
            )
            return
        self.settings_line = fence_line
        text = "\n".join(body) + "\n"
        try:
            data = yaml.safe_load(text)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError):
            data = {}  # not YAML: the loader below says what and where
        if data is None:
            return  # an empty block: no settings
        if not isinstance(data, dict):
            self.error(
                fence_line + 1,
                "the YAML block must be a mapping of plan settings (repository:, "
                "base_branch:, gates:, ...)",
            )
            return
        loaded = load_plan_text(text, source=self.source, fmt="yaml")
        for issue in loaded.issues:
            line = None if issue.line is None else issue.line + fence_line
            self.issues.append(
                LoadIssue(f"YAML block: {issue.message}", issue.path, line, issue.column)
            )
        if loaded.data is None:
            return
        settings = dict(loaded.data)
        if "tasks" in settings:
            line = loaded.lines.get(("tasks",))
            self.error(
                None if line is None else line + fence_line,
                "tasks are written as `- [ ]` items in the Markdown, not in the YAML block",
                ("tasks",),
            )
            del settings["tasks"]
        self.settings = settings
        self.settings_lines = {
            path: line + fence_line
            for path, line in loaded.lines.items()
            if path and path[0] != "tasks"
        }

    # -- headings

    def _heading(self, level: int, raw: str, number: int) -> None:
        text = _clean_heading(raw)
        if level == 1 and self.title is None:
            self.title = raw.replace("**", "").strip() or None
            self.title_line = number
            return  # the title opens no section: what follows is still "the top"
        while len(self.stack) > 1 and self.stack[-1].level >= level:
            self.stack.pop()
        in_group = any(s.kind == "group" for s in self.stack)
        section: _Section
        # A layer or stream label comes first ("L3: Quality gates" is a layer); inside a
        # layer or stream, headings are its sub-sections.
        if not in_group and (match := _LAYER.match(text) or _STREAM.match(text)):
            kind: GroupKind = "layer" if _LAYER.match(text) else "stream"
            section = _Section(
                "group", level, text, number, group=self._group(kind, match, text, number)
            )
        elif _GATES_HEADING.search(text):
            # Gates under a layer or stream, or named for them, run after each one.
            layer = in_group or bool(_LAYER_GATES_HEADING.search(text.lower().split("gate")[0]))
            gate_level: Literal["gates", "layer_gates"] = "layer_gates" if layer else "gates"
            section = _Section("gates", level, text, number, gate_level=gate_level)
        elif _SKIP_HEADING.search(text):
            section = _Section("skip", level, text, number)
        else:
            section = _Section("plain", level, text, number)
        self.stack.append(section)

    def _group(self, kind: GroupKind, match: re.Match[str], text: str, number: int) -> _Group:
        label = " ".join(match["label"].split())
        label = label[0].upper() + label[1:]  # "stream a" -> "Stream a", "l0" -> "L0"
        if self.group_kind is None:
            self.group_kind = (kind, number)
        elif self.group_kind[0] != kind:
            first_kind, first_line = self.group_kind
            self.error(
                number,
                f"'{label}' is a {kind}, but this breakdown has {first_kind}s (line "
                f"{first_line}); use layers (each after the one before) or streams (in "
                "parallel), not both",
            )
        same = [g for g in self.groups if g.kind == kind]
        for other in same:
            if other.label.lower() == label.lower():
                self.error(number, f"{kind} '{label}' again (first on line {other.line})")
        group = _Group(kind, label, number)
        group.dependent = kind == "stream" and bool(_DEPENDENT.search(text[match.end() :]))
        self.groups.append(group)
        return group

    # -- items

    def _body_end(self, i: int, indent: int) -> int:
        """The line after the last line of the item starting on line index `i`."""
        end = i + 1
        j = i + 1
        fence: _Fence | None = None
        while j < len(self.lines):
            line = self.lines[j]
            if fence is not None:
                if fence.closes(line):
                    fence = None
                end = j + 1
                j += 1
                continue
            if _is_blank(line):
                j += 1
                continue
            if _indent_width(line) <= indent:
                break
            opened = _open_fence(line, top_level=False)
            if opened is not None:
                fence = opened[0]
                fence.line = j + 1
            end = j + 1
            j += 1
        if fence is not None:
            self.error(
                fence.line,
                f"this {fence.char * fence.length} block is never closed: it would swallow "
                "the rest of the task",
            )
        return end

    def _item(self, i: int, match: re.Match[str]) -> int:
        number = i + 1
        indent = _indent_width(match["indent"])
        end = self._body_end(i, indent)
        section = self._effective()
        mark = match["mark"]
        if mark not in (" ", "x", "X"):
            if re.fullmatch(r"[A-Za-z0-9]+", mark):
                return i + 1  # "- [P] ..." or "- [WIP] ...": a bullet, not a checkbox
            if section.kind != "skip":
                self.error(
                    number,
                    f"'[{mark}]' is not a checkbox: write '- [ ]' for a task to do, "
                    "'- [x]' for one that is done",
                )
            return end
        body = self.lines[i + 1 : end]
        if section.kind == "gates":
            self._gate_item(match["rest"], body, number, section.gate_level)
            return end
        item = _Item(line=number, ticked=mark != " ", section=section)
        self._item_head(item, match["rest"])
        if section.kind != "skip":  # a checklist item's details are no concern of ours
            self._item_body(item, body, number + 1)
        self.items.append(item)
        if section.group is not None and section.kind == "group":
            section.group.items.append(item)
        return end

    def _item_head(self, item: _Item, rest: str) -> None:
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
        if match := _AT_SPECIALIST.match(head):
            item.specialist, item.specialist_line = match["name"], item.line
            head = head[match.end() :]
        if match := _PAREN_SPECIALIST.search(head):
            self._set_specialist(item, match["name"], item.line)
            head = head[: match.start()]
        item.title = head.strip()

    def _set_specialist(self, item: _Item, name: str, line: int) -> None:
        if item.specialist is not None and item.specialist != name:
            self.error(
                line,
                f"a second specialist '{name}' for this task (already '{item.specialist}', "
                f"line {item.specialist_line})",
            )
            return
        item.specialist, item.specialist_line = name, line

    def _item_body(self, item: _Item, body: list[str], first: int) -> None:
        widths = [_indent_width(line) for line in body if not _is_blank(line)]
        if not widths:
            return
        base = min(widths)
        prompt: list[tuple[int, str]] = []
        fence: _Fence | None = None
        j = 0
        while j < len(body):
            line = body[j]
            number = first + j
            if fence is not None:
                if fence.closes(line):
                    fence = None
                prompt.append((number, _dedent(line, base)))
                j += 1
                continue
            if line.lstrip().startswith("<!--"):  # a note to readers, not to the specialist
                closing = next((k for k in range(j, len(body)) if "-->" in body[k]), len(body) - 1)
                j = closing + 1
                continue
            opened = _open_fence(line, top_level=False)
            if opened is not None:
                fence = opened[0]
            elif not _is_blank(line) and _indent_width(line) == base:
                detail = _DETAIL.match(line.strip())
                if detail is not None:
                    j = self._detail(item, detail, body, j, first)
                    continue
            prompt.append((number, _dedent(line, base)))
            j += 1
        while prompt and _is_blank(prompt[0][1]):
            prompt.pop(0)
        while prompt and _is_blank(prompt[-1][1]):
            prompt.pop()
        if prompt:
            item.prompt_line = prompt[0][0]
            item.prompt = _prompt_text([text.rstrip() for _, text in prompt])

    def _detail(
        self, item: _Item, match: re.Match[str], body: list[str], j: int, first: int
    ) -> int:
        """Read one detail line (and its indented `- ` items); the index after it."""
        number = first + j
        key = _DETAIL_KEYS[" ".join(match["key"].lower().split())]
        value = match["value"]
        values: list[tuple[str, int]] = []
        end = j + 1
        if value:
            values.append((value, number))
        else:
            width = _indent_width(body[j])
            while end < len(body):
                # "files:" then "- a" lines, indented under it or not, up to a blank line
                # (a list in the prompt may follow).
                raw = body[end]
                bullet = _BULLET.match(raw)
                if (
                    _is_blank(raw)
                    or _indent_width(raw) < width
                    or bullet is None
                    or _DETAIL.match(bullet["rest"].strip())  # the next detail line
                ):
                    break
                values.append((bullet["rest"].strip(), first + end))
                end += 1
        written = match["key"].strip()
        if not values:
            self.error(
                number,
                f"`{written}:` lists nothing: write the values after the colon, or as "
                "indented `- ` items below it",
            )
            return end
        if key == "depends_on":
            if item.refs is None:
                item.refs, item.refs_line = [], number
            for text, line in values:
                refs = self._refs(text, line)
                if not refs:
                    self.error(line, f"`{written}:` names nothing: list tasks, or `none`")
                item.refs.extend(refs)
        elif key == "files":
            for text, line in values:
                names = [n.strip().strip("`").strip() for n in text.split(",")]
                item.files.extend((n, line) for n in names if n)
        elif key == "gates":
            for text, line in values:
                item.gates.extend((gate, line) for gate in self._gates(text, line, inline=True))
        else:
            if len(values) > 1 or not _SPECIALIST_NAME.match(values[0][0].strip("`")):
                self.error(
                    number,
                    f"`{written}:` must name one specialist (letters, digits, '-', '_', "
                    f"'.'), got {' '.join(v for v, _ in values)!r}",
                )
            else:
                name = _SPECIALIST_NAME.match(values[0][0].strip("`"))
                assert name is not None
                self._set_specialist(item, name["name"], number)
        return end

    def _refs(self, text: str, line: int) -> list[_Ref]:
        parts = [p.strip().strip("`").strip() for p in _REF_SPLIT.split(text)]
        return [_Ref(p, line) for p in parts if p]

    # -- gates

    def _gates(self, text: str, line: int, *, inline: bool) -> list[Any]:
        """Gates in one value: a `{name: .., run: ..}` mapping, `` `commands` `` (optionally
        `name: `command``), or one plain command. Problems are reported; bad parts dropped."""
        text = text.strip()
        if text.startswith("{"):
            try:
                mapping = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                problem = getattr(exc, "problem", None) or "not a mapping"
                self.error(
                    line, f"gate {text!r} is not a valid {{name: .., run: ..}} mapping: {problem}"
                )
                return []
            if not isinstance(mapping, dict):
                self.error(line, f"gate {text!r} is not a {{name: .., run: ..}} mapping")
                return []
            return [mapping]
        if "`" not in text:
            if not inline:
                return []
            return [{"name": _gate_name(text), "run": text}]
        gates: list[Any] = []
        position = 0
        spans = _code_spans(text)
        if spans is None:
            self.error(line, f"unmatched backtick in {text!r}: put each gate command in `...`")
            return []
        for k, (start, end, command) in enumerate(spans):
            before = text[position:start].strip(" \t,;")
            after_end = spans[k + 1][0] if k + 1 < len(spans) else len(text)
            after = text[end:after_end]
            name = before[:-1].strip() if before.endswith(":") else ""
            gate: dict[str, Any] = {"name": name or _gate_name(command), "run": command}
            if _EMPTY_OUTPUT.search(after):
                gate["expect"] = "empty_output"
            gates.append(gate)
            position = end
        return gates

    def _gate_item(self, rest: str, body: list[str], number: int, level: str) -> None:
        text = " ".join([rest.strip(), *(line.strip() for line in body if line.strip())])
        gates = self._gates(text, number, inline=False)
        if not gates:
            self.warning(
                number,
                f"not a gate (no `command` in backticks): {rest.strip()[:60]!r}",
            )
        self.gates[level].extend((gate, number) for gate in gates)


def _code_spans(text: str) -> list[tuple[int, int, str]] | None:
    """Inline code spans as (start, end, content); None when a backtick run is unmatched."""
    spans: list[tuple[int, int, str]] = []
    runs = list(_BACKTICK_RUN.finditer(text))
    k = 0
    while k < len(runs):
        opening = runs[k]
        closing = next((r for r in runs[k + 1 :] if len(r.group()) == len(opening.group())), None)
        if closing is None:
            return None
        content = text[opening.end() : closing.start()]
        if content.startswith(" ") and content.endswith(" ") and content.strip():
            content = content[1:-1]  # CommonMark: `` `x` `` is "`x`"
        if content.strip():
            spans.append((opening.start(), closing.end(), content.strip()))
        k = runs.index(closing) + 1
    return spans


def _prompt_text(lines: list[str]) -> str:
    """The prompt: the text as written, or the content of a code block that is all of it
    (so a shell command in ```sh ... ``` is the command, with its trailing newline)."""
    first = _open_fence(lines[0], top_level=False)
    if first is not None and len(lines) >= 2:
        fence = first[0]
        closes = [k for k in range(1, len(lines)) if fence.closes(lines[k])]
        if closes and closes[0] == len(lines) - 1:
            # As CommonMark does: the fence's own indentation comes off its content lines.
            width = _indent_width(lines[0])
            inner = [_dedent(line, width) for line in lines[1:-1]]
            return "\n".join(inner) + "\n" if inner else ""
    return "\n".join(lines)


# --- from the parts to plan data ---------------------------------------------------------------


def parse_breakdown(
    text: str, source: str, *, defaults: Mapping[str, Any] | None = None
) -> ParsedBreakdown:
    """Read a Markdown breakdown into plan data, its line map and every problem.

    `defaults` are plan settings used where the breakdown's YAML block gives none (e.g. the
    `repository` and `handoff` of a breakdown read from a GitHub issue); a `name` derived from
    the ``#`` title beats a default one.
    """
    parser = _Parser(text, source)
    parser.parse()
    return _Builder(parser, dict(defaults or {})).build()


class _Builder:
    def __init__(self, parser: _Parser, defaults: dict[str, Any]) -> None:
        self.p = parser
        self.defaults = defaults
        self.lines: dict[PathKey, int] = {}
        self.tasks: list[_Item] = []  # the items that are tasks, ticked ones too
        self.by_id: dict[str, _Item] = {}
        self.by_title: dict[str, _Item] = {}
        self.by_group: dict[str, _Group] = {}

    def build(self) -> ParsedBreakdown:
        p = self.p
        self._select_tasks()
        self._assign_ids()
        for item in self.tasks:
            self.by_id.setdefault(item.id, item)
            if item.title:
                self.by_title.setdefault(" ".join(item.title.split()).casefold(), item)
        for group in p.groups:
            self.by_group.setdefault(group.label.casefold(), group)
        data = self._settings()
        pending = [item for item in self.tasks if not item.ticked]
        data["tasks"] = [self._task(k, item) for k, item in enumerate(pending)]
        first_task = pending[0].line if pending else None
        self.lines[("tasks",)] = first_task or p.title_line or 1
        ticked = [item for item in self.tasks if item.ticked]
        hint = ""
        if not pending:
            if ticked:
                hint = f" (all {len(ticked)} are ticked `- [x]`: nothing is left to do)"
            elif p.items:
                hint = " (no checkbox item is under a heading that holds tasks: see the warnings)"
            else:
                hint = " (write each task as a checkbox item: `- [ ] T1: Title`)"
        elif ticked:
            ids = ", ".join(item.id for item in ticked)
            p.warning(
                ticked[0].line,
                f"{len(ticked)} ticked `- [x]` task{'s' if len(ticked) > 1 else ''} left out "
                f"as done: {ids}",
            )
        issues = sorted(p.issues, key=lambda issue: issue.line or 0)
        return ParsedBreakdown(
            source=p.source,
            title=p.title,
            data=data,
            lines=self.lines,
            issues=issues,
            tasks=[
                TaskLine(
                    id=item.id,
                    title=item.title,
                    line=item.line,
                    ticked=item.ticked,
                    group=item.section.group.label if item.section.group else None,
                )
                for item in self.tasks
            ],
            no_tasks_hint=hint,
        )

    # -- which items are tasks

    def _select_tasks(self) -> None:
        grouped = bool(self.p.groups)
        left_out: dict[int, list[_Item]] = {}
        for item in self.p.items:
            kind = item.section.kind
            if kind == "group" or (kind == "plain" and not grouped):
                self.tasks.append(item)
            else:
                left_out.setdefault(id(item.section), []).append(item)
        for items in left_out.values():
            section = items[0].section
            where = f"under '{section.heading}'" if section.heading else "above the first section"
            count = f"{len(items)} checkbox item{'s' if len(items) > 1 else ''}"
            if section.kind == "skip":
                why = "criteria and checklist sections hold no tasks"
            else:
                kinds = f"{self.p.groups[0].kind}s"
                why = f"in a breakdown with {kinds}, tasks go under a {kinds[:-1]} heading"
            self.p.warning(
                items[0].line,
                f"{count} {where} {'is' if len(items) == 1 else 'are'} "
                f"not {'a task' if len(items) == 1 else 'tasks'}: {why}",
            )

    def _assign_ids(self) -> None:
        explicit: dict[str, _Item] = {}
        for item in self.tasks:
            if item.raw_id is None:
                continue
            item.id = normalize_id(item.raw_id)
            first = explicit.get(item.id)
            if first is None:
                explicit[item.id] = item
            elif first.ticked or item.ticked:
                # Two pending tasks are left to validation, which reports them like YAML's.
                self.p.error(
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

    # -- settings

    def _settings(self) -> dict[str, Any]:
        p = self.p
        data: dict[str, Any] = {}
        name_line: int | None = None
        if "name" in p.settings:
            data["name"] = p.settings["name"]
        elif p.title is not None and slugify(p.title):
            data["name"] = slugify(p.title)
            name_line = p.title_line
        elif "name" in self.defaults:
            data["name"] = self.defaults["name"]
        for key, value in self.defaults.items():
            if key != "name" and key not in p.settings:
                data[key] = value
        for key, value in p.settings.items():
            if key != "name":
                data[key] = value
        self.lines.update(p.settings_lines)
        self.lines[()] = p.settings_line or p.title_line or 1
        if name_line is not None:
            self.lines[("name",)] = name_line
        for level, gates in p.gates.items():
            if not gates:
                continue
            existing = data.get(level, [])
            if not isinstance(existing, list):
                continue  # the model reports the YAML value's type; nothing to add to
            data[level] = [*existing, *(gate for gate, _ in gates)]
            for k, (_, line) in enumerate(gates, start=len(existing)):
                self.lines[(level, k)] = line
            self.lines.setdefault((level,), gates[0][1])
        return data

    # -- tasks

    def _task(self, k: int, item: _Item) -> dict[str, Any]:
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
        group = item.section.group if item.section.kind == "group" else None
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
        if item.files:
            task["files"] = [name for name, _ in item.files]
            self.lines[(*path, "files")] = item.files[0][1]
            for j, (_, line) in enumerate(item.files):
                self.lines[(*path, "files", j)] = line
        if item.gates:
            task["gates"] = [gate for gate, _ in item.gates]
            self.lines[(*path, "gates")] = item.gates[0][1]
            for j, (_, line) in enumerate(item.gates):
                self.lines[(*path, "gates", j)] = line
        return task

    def _dependencies(self, item: _Item, group: _Group | None) -> list[tuple[str, int]] | None:
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

    def _resolve(self, refs: list[_Ref]) -> list[tuple[str, int]]:
        if len(refs) == 1 and refs[0].text.casefold() in _NO_DEPENDENCIES:
            return []
        out: list[tuple[str, int]] = []
        for ref in refs:
            key = normalize_id(ref.text)
            target = self.by_id.get(key) or self.by_title.get(" ".join(ref.text.split()).casefold())
            if target is not None:
                if not target.ticked:  # a ticked task is done: nothing to wait for
                    out.append((target.id, ref.line))
                continue
            group = self.by_group.get(" ".join(ref.text.split()).casefold())
            if group is not None:
                out += [(task_id, ref.line) for task_id in _waits_for(group)]
                continue
            out.append((key, ref.line))  # unknown: validation says so, at this line
        return out


def _waits_for(group: _Group) -> list[str]:
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


__all__ = ["ParsedBreakdown", "TaskLine", "normalize_id", "parse_breakdown", "slugify"]
