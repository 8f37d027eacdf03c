"""Ticking an issue's task list: `- [ ]` lines of finished tasks become `- [x]`.

Pure text in, text out. Only the space between the brackets of a matching line changes;
every other byte (line endings, indentation, other lines, code blocks) stays as it was, so
a human's edits to the issue survive, and ticking twice changes nothing.

A line matches a task when its text starts with the task id, case-insensitive: bare and
followed by punctuation (`T1: Create schema`, `t1 - ...`, `T1) ...`), or emphasised
(`**t1** Create schema`, `` `t1` ...``); or when its text is the task's title, with or without
another id in front and a trailing `(specialist)` note.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# A list item with a checkbox, possibly inside block quotes: "  - [ ] text", "> 1. [x] text".
_ITEM = re.compile(
    r"^[ \t]*(?:>[ \t]?)*[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+"  # indent, quotes, bullet
    r"\[(?P<mark>[ xX])\](?P<rest>[ \t].*|)$"
)
# A fenced code block opens and closes with three or more ` or ~ (CommonMark).
_FENCE = re.compile(r"^[ \t]*(?:>[ \t]?)*[ \t]*(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_EMPHASIS = re.compile(r"^(\*\*|__|`|\*|_)(.+?)\1")
_TRAILING_NOTE = re.compile(r"\s*\([^()]*\)\s*$")
# Another naming's id in front of a title: "T1: ", "**1.2** - ", "`db`) ".
_DASHES = "\u2013\u2014"  # en and em dash
_ANY_ID = re.compile(rf"^(\*\*|__|`)?[\w.-]+\1?\s*[:.)\]|{_DASHES}-]\s+")
_PUNCTUATION = f":.)]-{_DASHES}|"
_ID_SEPARATORS = _PUNCTUATION + " \t"


@dataclass(frozen=True)
class TaskLine:
    """A finished task as the issue may name it. `text`: the exact text of its item, known
    when the plan was read from this issue; it wins over matching by id or title."""

    id: str
    title: str
    text: str | None = None


@dataclass
class TickOutcome:
    body: str
    ticked: list[str] = field(default_factory=list)  # task ids whose line(s) were ticked now
    already_ticked: list[str] = field(default_factory=list)  # found ticked already
    not_found: list[str] = field(default_factory=list)  # no checkbox line names them

    @property
    def changed(self) -> bool:
        return bool(self.ticked)


def _normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


def _strip_id(text: str, task_id: str) -> str | None:
    """The text after a leading task id (bare, **bold** or `code`), or None if it has none."""
    text = text.strip()
    emphasised = _EMPHASIS.match(text)
    if emphasised and emphasised.group(2).strip().casefold() == task_id.casefold():
        return text[emphasised.end() :].lstrip(_ID_SEPARATORS)
    if text[: len(task_id)].casefold() != task_id.casefold():
        return None
    after = text[len(task_id) :]
    # A bare id needs punctuation after it: "t10" is not "t1", "a sub-step" is not task "a".
    if after and after.lstrip(" \t")[:1] not in tuple(_PUNCTUATION):
        return None
    return after.lstrip(_ID_SEPARATORS)


def _names_task(text: str, task: TaskLine) -> bool:
    if _strip_id(text, task.id) is not None:
        return True
    title = _normalise(task.title)
    for candidate in (text, _ANY_ID.sub("", text, count=1)):
        if title in (_normalise(candidate), _normalise(_TRAILING_NOTE.sub("", candidate))):
            return True
    return False


def checkbox_lines(body: str) -> Iterable[tuple[int, re.Match[str]]]:
    """(line index, match) of every checkbox item outside fenced code blocks."""
    fence: str | None = None
    for index, raw in enumerate(body.split("\n")):
        line = raw[:-1] if raw.endswith("\r") else raw
        opened = _FENCE.match(line)
        if fence is not None:
            closes = opened and not opened["info"].strip() and opened["fence"][0] == fence[0]
            if closes and opened and len(opened["fence"]) >= len(fence):
                fence = None
            continue
        if opened and not (opened["fence"][0] == "`" and "`" in opened["info"]):
            fence = opened["fence"]
            continue
        item = _ITEM.match(line)
        if item:
            yield index, item


def tick_checkboxes(body: str, tasks: Sequence[TaskLine]) -> TickOutcome:
    """Tick the unticked checkbox lines naming one of `tasks`; see the module docstring."""
    lines = body.split("\n")
    ticked: dict[str, None] = {}
    already: dict[str, None] = {}
    for index, item in checkbox_lines(body):
        text = item["rest"].strip()
        exact = _normalise(text)
        task = next((t for t in tasks if t.text and _normalise(t.text) == exact), None)
        task = task or next((t for t in tasks if _names_task(text, t)), None)
        if task is None:
            continue
        if item["mark"] == " ":
            start = item.start("mark")
            lines[index] = lines[index][:start] + "x" + lines[index][start + 1 :]
            ticked[task.id] = None
        else:
            already[task.id] = None
    found = ticked.keys() | already.keys()
    return TickOutcome(
        body="\n".join(lines),
        ticked=list(ticked),
        already_ticked=[t for t in already if t not in ticked],
        not_found=[t.id for t in tasks if t.id not in found],
    )


def item_texts(body: str) -> dict[int, str]:
    """Line number (1-based) -> the text of the checkbox item on it, outside code blocks."""
    return {index + 1: item["rest"].strip() for index, item in checkbox_lines(body)}
