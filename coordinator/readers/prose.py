"""Dependencies written as sentences, as spec-kit's "Dependencies" sections hold them:

    - T002 before any compose service tasks (T006-T017)
    - Tests (T004-T007) before implementation (T008-T014)
    - T008 blocks T009, T015
    - T019 and T020 depend on T018 (hook must exist first)
    - T064-T066 sequential after T063
    - Setup (T001-T003) → Tests (T004-T007) → Core (T008-T014)

Only task ids count (`T012`, ranges `T006-T017`); a side without ids ("Depends on
Foundational", "US2 before US5") says nothing here. What comes back is, for each
statement, the tasks that wait and the tasks they wait for.
"""

from __future__ import annotations

import itertools
import re

from coordinator.readers.refs import expand_range

_ID = r"T\d{2,4}[a-z]?"
_IDS = re.compile(
    rf"\b{_ID}(?:[ \t]*(?:-|\u2013|\u2014|\.\.|to|through)[ \t]*T?\d{{2,4}}\b)?", re.I
)
_ARROW = re.compile("[ \t]*(?:\u2192|->|\u27f6|=>|\u21d2)[ \t]*")
_SENTENCES = re.compile(r";|\.(?:[ \t]|$)")
# (pattern, True when the part before the keyword is what waits)
_RELATIONS: list[tuple[re.Pattern[str], bool]] = [
    (re.compile(r"\bbefore\b", re.I), False),
    (re.compile(r"\bblocks?\b", re.I), False),
    (re.compile(r"\bdepends?[ \t]+(?:on|upon)\b", re.I), True),
    (re.compile(r"\b(?:requires?|needs?)\b", re.I), True),
    (re.compile(r"\b(?:after|following)\b", re.I), True),
]


def task_ids(text: str) -> list[str]:
    """The task ids in `text`, ranges expanded, lowercased, in order."""
    out: list[str] = []
    for match in _IDS.finditer(text):
        token = re.sub(r"[ \t]+", "", match.group())
        expanded = expand_range(re.sub(r"(?i)(to|through)", "-", token))
        for task in expanded if expanded is not None else [token.lower()]:
            if task not in out:
                out.append(task)
    return out


def statements(text: str) -> list[tuple[list[str], list[str]]]:
    """(the tasks that wait, the tasks they wait for) for each statement in `text`."""
    out: list[tuple[list[str], list[str]]] = []
    for sentence in _SENTENCES.split(text.replace("**", "")):
        if not sentence.strip():
            continue
        arrows = _ARROW.split(sentence)
        if len(arrows) > 1:
            sides = [task_ids(part) for part in arrows]
            out += [(later, earlier) for earlier, later in itertools.pairwise(sides)]
            continue
        found = [
            (m.start(), m.end(), first_waits)
            for p, first_waits in _RELATIONS
            for m in [p.search(sentence)]
            if m is not None
        ]
        if not found:
            continue
        start, end, first_waits = min(found)
        before, after = task_ids(sentence[:start]), task_ids(sentence[end:])
        waiting, waited_for = (before, after) if first_waits else (after, before)
        out.append((waiting, waited_for))
    return [(w, f) for w, f in out if w and f]


__all__ = ["statements", "task_ids"]
