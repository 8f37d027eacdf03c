"""Merge conflicts as the fixer and the human see them. Pure: no I/O.

A task whose commit does not merge onto the execution branch is told which other tasks
changed the same files since it started, which files, and both sides of every clash (quoted,
bounded). Its next attempt gets the task's changes replayed onto the execution head with
git's conflict markers in those files; until no marker that the conflict brought is left in
them, the task's commit is refused (activities/conflicts.py keeps the record of those files).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

# What a conflict's description may weigh: it travels in workflow history, to the fixer and
# into the escalation.
CONFLICT_CHARS = 3000
SIDES_CHARS = 1200  # both sides of one file's clashes, quoted
SIDES_FILES = 3  # files whose sides are quoted; the others are named
OTHERS_SHOWN = 10  # other tasks named; "and N more" after that
# Git's conflict markers at its default size (`conflict-marker-size`): `<<<<<<< ours`,
# `||||||| base` (diff3 style), `=======` alone on its line, `>>>>>>> theirs`.
_MARKER = re.compile(r"^(?:(?:<{7}|\|{7}|>{7})(?:[ \t].*)?|={7}[ \t]*)\r?$")
_OPEN_CLOSE = re.compile(r"^(?:<{7}|>{7})(?:[ \t].*)?\r?$")
_HUNK = re.compile(r"^@@ -\S+ \+(\d+)")


class ConflictFacts(BaseModel):
    """What the git activity found out about a conflict; `describe` words it."""

    task_id: str
    execution_branch: str
    execution_head: str
    task_branch: str
    files: list[str]
    # Who changed the conflicting files on the execution branch since the task's base:
    # "task <id>" for task (and fix) commits, "commit <sha> (<subject>)" for others.
    others: list[str] = Field(default_factory=list)
    messages: list[str] = Field(default_factory=list)  # git's CONFLICT lines
    sides: dict[str, str] = Field(default_factory=dict)  # file -> its marked regions


def marker_lines(text: str) -> list[int]:
    """The (1-based) numbers of the lines that are conflict markers as git writes them."""
    return [n for n, line in enumerate(text.split("\n"), 1) if _MARKER.match(line)]


def added_marker_lines(diff: str) -> dict[str, list[int]]:
    """file -> the new-side line numbers of the `<<<<<<< `/`>>>>>>> ` lines a unified diff
    (`-U0`) adds. `=======` alone is left out: it is also a heading underline."""
    found: dict[str, list[int]] = {}
    file, line = "", 0
    for row in diff.split("\n"):
        if row.startswith("+++ "):
            file = row[4:].removeprefix("b/")
        elif row.startswith("@@"):
            hunk = _HUNK.match(row)
            line = int(hunk.group(1)) if hunk else 0
        elif row.startswith("+"):
            if _OPEN_CLOSE.match(row[1:]) and file != "/dev/null":
                found.setdefault(file, []).append(line)
            line += 1
    return found


def left_markers(text: str, allowed: int) -> list[int]:
    """The marker lines of a file that had a conflict, when it has more of them than it had
    before the conflict (`allowed`: a reStructuredText underline `=======` is no marker);
    [] when the conflict is resolved."""
    lines = marker_lines(text)
    return lines if len(lines) > allowed else []


def marked_regions(text: str, limit: int = SIDES_CHARS) -> str:
    """The regions between `<<<<<<<` and `>>>>>>>` (both sides of every clash), with their
    markers and within `limit` characters; "" when the text has none."""
    regions: list[str] = []
    current: list[str] | None = None
    for line in text.split("\n"):
        if current is None and line.startswith("<" * 7):
            current = []
        if current is not None:
            current.append(line)
            if line.startswith(">" * 7):
                regions.append("\n".join(current))
                current = None
    if current is not None:  # an unterminated region: still worth showing
        regions.append("\n".join(current))
    return clip("\n...\n".join(regions), limit)


def clip(text: str, limit: int) -> str:
    """`text` within `limit` characters: its beginning and its end, with what was cut said."""
    if len(text) <= limit:
        return text
    note = f"\n[... {len(text) - limit} characters cut ...]\n"
    if limit <= len(note) * 2:
        return text[: max(0, limit)]
    room = limit - len(note)
    head = room // 3
    return text[:head] + note + text[len(text) - (room - head) :]


def named(items: list[str], shown: int) -> str:
    """'a, b and c'; past `shown` items, 'and N more'."""
    head = items[:shown]
    rest = len(items) - len(head)
    if rest:
        return f"{', '.join(head)} and {rest} more"
    if len(head) < 2:
        return "".join(head)
    return f"{', '.join(head[:-1])} and {head[-1]}"


def describe(facts: ConflictFacts, limit: int = CONFLICT_CHARS) -> str:
    """For the fixer (and the human): who clashed with the task, where, and both sides.

    The first line names the other tasks and the files: it is what an escalation shows."""
    files = named(facts.files, OTHERS_SHOWN) or "(see git's messages below)"
    others = named(facts.others, OTHERS_SHOWN) or "another change"
    lines = [
        f"task {facts.task_id} conflicts with {others} in {files}: both changed the same "
        f"lines since task {facts.task_id} started ({facts.execution_branch} is at "
        f"{facts.execution_head[:12]})",
        *facts.messages,
    ]
    quoted = [(f, s) for f, s in facts.sides.items() if s][:SIDES_FILES]
    if quoted:
        lines.append(
            f"Both sides: between `<<<<<<< {facts.execution_branch}` and `=======` is what "
            f"{others} put on the execution branch; between `=======` and `>>>>>>> "
            f"{facts.task_branch}` is this task's change."
        )
        for file, sides in quoted:
            lines += [f"--- {file}", sides]
    return clip("\n".join(lines), limit)


def markers_left(files: dict[str, list[int]], others: list[str]) -> str:
    """Why a task's commit was refused: conflict markers still in these files (path -> the
    marker lines)."""
    where = "; ".join(
        f"{path} (line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines[:12]))}"
        f"{', ...' if len(lines) > 12 else ''})"
        for path, lines in files.items()
    )
    origin = f" of the conflict with {named(others, OTHERS_SHOWN)}" if others else ""
    return (
        f"conflict markers{origin} are still in {where}: the commit was refused. Resolve "
        "each conflict (keep what both sides need) and remove every `<<<<<<<`, `=======` "
        "and `>>>>>>>` line the merge left."
    )
