"""Ticking a finished task in its plan file: text in, text out.

Markdown: the task's checkbox line, found by its text as read when the plan was validated
(at its line, or wherever it moved), gets its mark replaced (`- [ ] T012 ...` ->
`- [X] T012 ...`); nothing else changes, and ticking twice changes nothing. A container
item (Kiro's `- [ ] 2.` above `2.1` and `2.2`) is ticked when all its children are.
Taskmaster: the task's (or subtask's) `status` becomes `"done"`, and a parent whose subtasks
are all done (or cancelled) becomes done too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from coordinator.progress import PlanTickRequest, TaskTick, TickItem

_BOX = re.compile(r"^(?P<head>[ \t]*(?:>[ \t]?)*[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+\[)(?P<mark>.)\]")
_DONE = {"x", "X"}
_CLOSED = {"done", "cancelled"}


@dataclass(frozen=True)
class TickOutcome:
    text: str
    changed: bool
    note: str = ""  # why nothing was ticked, when nothing was


def tick_plan_text(text: str, request: PlanTickRequest) -> TickOutcome:
    if request.format == "taskmaster":
        return _tick_taskmaster(text, request)
    return _tick_markdown(text, request.tick, request.mark)


# --- Markdown ----------------------------------------------------------------------------------


def _key(line: str) -> str | None:
    """A checkbox line with its mark blanked (so a line matches itself ticked or not)."""
    match = _BOX.match(line.rstrip("\r"))
    if match is None:
        return None
    return match["head"] + "\0]" + line.rstrip("\r")[match.end() :]


def _find(lines: list[str], item: TickItem) -> int | None:
    """The index of the item's line: at its recorded line if it is still there, else the
    nearest line with the same text."""
    want = _key(item.text)
    if want is None:
        return None
    recorded = item.line - 1
    if 0 <= recorded < len(lines) and _key(lines[recorded]) == want:
        return recorded
    found = [i for i, line in enumerate(lines) if _key(line) == want]
    return min(found, key=lambda i: abs(i - recorded)) if found else None


def _is_ticked(line: str) -> bool:
    match = _BOX.match(line)
    return match is not None and match["mark"] in _DONE


def _set_mark(line: str, mark: str) -> str:
    match = _BOX.match(line)
    assert match is not None
    return line[: match.start("mark")] + mark + line[match.end("mark") :]


def _tick_markdown(text: str, tick: TaskTick, mark: str) -> TickOutcome:
    lines = text.split("\n")
    changed = False
    missing: list[str] = []
    for item in tick.items:
        index = _find(lines, item)
        if index is None:
            missing.append(f"line {item.line}")
        elif not _is_ticked(lines[index]):
            lines[index] = _set_mark(lines[index], mark)
            changed = True
    if tick.parent is not None:
        parent = _find(lines, tick.parent)
        children = [_find(lines, child) for child in tick.children]
        done = all(i is not None and _is_ticked(lines[i]) for i in children)
        if parent is not None and done and not _is_ticked(lines[parent]):
            lines[parent] = _set_mark(lines[parent], mark)
            changed = True
    note = ""
    if missing:
        note = f"its checkbox ({', '.join(missing)} when the plan was read) is no longer there"
    elif not changed:
        note = "already ticked"
    return TickOutcome("\n".join(lines), changed, note)


# --- Taskmaster --------------------------------------------------------------------------------


def _indent(text: str) -> int | str:
    for line in text.split("\n")[1:]:
        stripped = line.lstrip(" \t")
        if stripped and stripped != line:
            prefix = line[: len(line) - len(stripped)]
            return "\t" if prefix.startswith("\t") else len(prefix)
    return 2


def _same_id(value: object, wanted: str) -> bool:
    return str(value).strip() == wanted


def _tasks_of(data: Any, tag: str | None) -> list[Any] | None:
    holder = data.get(tag) if tag is not None and isinstance(data, dict) else data
    tasks = holder.get("tasks") if isinstance(holder, dict) else None
    return tasks if isinstance(tasks, list) else None


def _tick_taskmaster(text: str, request: PlanTickRequest) -> TickOutcome:
    task_id = request.tick.taskmaster_id
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        return TickOutcome(text, False, f"the file is not JSON any more ({err})")
    tasks = _tasks_of(data, request.tag)
    if tasks is None or task_id is None:
        where = f"tag '{request.tag}'" if request.tag else "the file"
        return TickOutcome(text, False, f"{where} holds no task list any more")
    parent_id, _, sub_id = task_id.partition(".")
    parent = next(
        (t for t in tasks if isinstance(t, dict) and _same_id(t.get("id"), parent_id)), None
    )
    if parent is None:
        return TickOutcome(text, False, f"task {task_id} is no longer in the file")
    target = parent
    if sub_id:
        subtasks = parent.get("subtasks")
        found = [s for s in subtasks or [] if isinstance(s, dict) and _same_id(s.get("id"), sub_id)]
        if not found:
            return TickOutcome(text, False, f"subtask {task_id} is no longer in the file")
        target = found[0]
    changed = False
    if target.get("status") != "done":
        target["status"] = "done"
        changed = True
    subtasks = [s for s in parent.get("subtasks") or [] if isinstance(s, dict)]
    closed = bool(subtasks) and all(s.get("status") in _CLOSED for s in subtasks)
    if sub_id and closed and parent.get("status") != "done":
        parent["status"] = "done"
        changed = True
    if not changed:
        return TickOutcome(text, False, "already done")
    out = json.dumps(data, indent=_indent(text), ensure_ascii=False)
    return TickOutcome(out + ("\n" if text.endswith("\n") else ""), True)


__all__ = ["TickOutcome", "tick_plan_text"]
