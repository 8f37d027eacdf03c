"""Dependencies as authors write them: `T002, T003`, `T006-T017`, `Tasks 1-11`,
`Task 1 and Task 2 (needs their output)`, `T014 (embeddings service)`, `none`.

`parse_refs` splits a value into references (parenthesised remarks dropped, ranges and
"Tasks 1, 2" kept whole); `expand_range` turns `T006-T017` into its ids, keeping the width
of the numbers (`t006` ... `t017`).
"""

from __future__ import annotations

import re

from coordinator.readers.model import Ref

NO_DEPENDENCIES = frozenset({"none", "nothing", "-", "n/a", "na", "no", "\u2014", "\u2013", "n.a."})

_PARENS = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")
_SPLIT = re.compile(r"[ \t]*[,;&+][ \t]*|[ \t]+and[ \t]+", re.I)
_TASK_WORD = re.compile(r"^(?P<word>tasks?)[ \t]+", re.I)
_RANGE = re.compile(
    r"^(?P<prefix>[A-Za-z]*-?)(?P<start>\d+)[ \t]*(?:-|\u2013|\u2014|\.\.|to|through|thru)[ \t]*"
    r"(?P=prefix)?(?P<end>\d+)$",
    re.I,
)
_ID_TOKEN = re.compile(r"^(?:[A-Za-z]{1,4}-?)?\d+(?:\.\d+)*[a-z]?$")
# A whole value that says "no dependencies", perhaps with a remark after it.
_NONE_VALUE = re.compile(r"^(?:none|nothing|n/a|no dependencies|—|-)\b", re.I)


def parse_refs(text: str, line: int, why: str = "depends on") -> list[Ref]:
    """The references in one value; an empty list for "none" (and for nothing at all)."""
    value = " ".join(text.replace("**", "").replace("`", "").split()).strip(" .")
    if not value or _NONE_VALUE.match(value):
        return []
    value = _PARENS.sub(" ", value)
    refs: list[Ref] = []
    word = ""
    for part in _SPLIT.split(value):
        part = " ".join(part.split()).strip(" .:")
        if not part:
            continue
        match = _TASK_WORD.match(part)
        if match:
            word = "task"
            part = part[match.end() :]
        elif word and _ID_TOKEN.match(part.split()[0]):
            pass  # "Tasks 1, 2 and 3": the word carries over
        else:
            word = ""
        refs.append(Ref(f"{word} {part}".strip() if word else part, line, why))
    return refs


def expand_range(text: str) -> list[str] | None:
    """`T006-T017` -> [t006, ..., t017]; `task 1-3` -> [task-1, task-2, task-3]; else None."""
    word = ""
    match = _TASK_WORD.match(text)
    if match:
        word, text = "task-", text[match.end() :]
    found = _RANGE.match(text.strip())
    if found is None:
        return None
    start, end = int(found["start"]), int(found["end"])
    if end < start or end - start > 500:
        return None
    width = len(found["start"]) if found["start"].startswith("0") else 0
    prefix = (word + found["prefix"]).lower()
    return [f"{prefix}{n:0{width}d}" for n in range(start, end + 1)]


def leading_id(text: str) -> str | None:
    """`T01 PASS` -> `T01`: the first word, when it looks like a task id."""
    words = text.split()
    return words[0] if words and _ID_TOKEN.match(words[0]) else None


__all__ = ["NO_DEPENDENCIES", "expand_range", "leading_id", "parse_refs"]
