"""Which reader a plan file needs, by its content (its name only breaks ties).

- JSON with Taskmaster's task list (numeric ids, `status`/`dependencies`/`subtasks`):
  Taskmaster; other JSON, and YAML: plan data.
- Markdown with `L0`/`Layer 1`/`Stream A` headings: the seeds' breakdown grammar.
- Markdown whose checkbox items start with spec-kit ids (`T001`, `**T001**`), or carry its
  `[P]`/`[US1]` tags: spec-kit.
- Markdown with two or more task headings (`### Task 2: ...`): heading-style.
- Markdown whose checkbox items are numbered (`- [ ] 2.`, `- [ ] 2.1`): Kiro / Agent OS.
- Any other Markdown: the breakdown grammar.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Literal

from coordinator.readers.breakdown import LAYER, STREAM
from coordinator.readers.headings import TASK_HEADING
from coordinator.readers.kiro import NUMBER
from coordinator.readers.markdown import (
    HEADING,
    ITEM,
    clean_heading,
    comment_end,
    open_fence,
    split_lines,
)
from coordinator.readers.model import ReaderName
from coordinator.readers.taskmaster import is_taskmaster

Kind = ReaderName | Literal["yaml", "json"]

_SPECKIT_ID = re.compile(r"^(?:\[[^\]]*\][ \t]*)*\[?T-?\d{3,}[a-z]?\]?(?!\w)")
_SPECKIT_TAG = re.compile(r"\[(?:P|US\d+|Story[ \t]*\d+)\]", re.I)
_MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdx")


def detect(text: str, name: str = "") -> Kind:
    suffix = PurePath(name).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "yaml"
    stripped = text.lstrip("\ufeff \t\r\n")
    if suffix == ".json" or stripped.startswith("{"):
        return "taskmaster" if is_taskmaster(text) else "json"
    if suffix in _MARKDOWN_SUFFIXES or _looks_like_markdown(text):
        return detect_markdown(text)
    return "yaml"


def _looks_like_markdown(text: str) -> bool:
    lines = [line for line in split_lines(text) if line.strip()]
    return bool(lines) and (
        lines[0].lstrip().startswith("#") or any(ITEM.match(line) for line in lines)
    )


def detect_markdown(text: str) -> ReaderName:
    counts = _count(split_lines(text))
    if counts["groups"]:
        return "breakdown"
    items = counts["items"] or 1
    if counts["speckit_ids"] and (counts["speckit_ids"] * 2 >= items or counts["speckit_tags"]):
        return "speckit"
    if counts["task_headings"] >= 2:
        return "headings"
    if counts["numbered"] >= 2 and counts["numbered"] * 2 >= items:
        return "kiro"
    return "breakdown"


def _count(lines: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(
        ("groups", "items", "speckit_ids", "speckit_tags", "task_headings", "numbered"), 0
    )
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("<!--"):
            i = comment_end(lines, i)
            continue
        if (fence := open_fence(line, top_level=True)) is not None:
            i += 1
            while i < len(lines) and not fence[0].closes(lines[i]):
                i += 1
            i += 1
            continue
        if heading := HEADING.match(line):
            text = clean_heading(heading["text"] or "")
            if len(heading["hashes"]) > 1 and (
                (re.match(r"^(?:L\d+|layer[ \t])", text, re.I) and LAYER.match(text))
                or STREAM.match(text)
            ):
                counts["groups"] += 1
            if len(heading["hashes"]) > 1 and TASK_HEADING.match(text.replace("**", "")):
                counts["task_headings"] += 1
        elif item := ITEM.match(line):
            head = item["rest"].replace("**", "").strip()
            counts["items"] += 1
            counts["speckit_ids"] += bool(_SPECKIT_ID.match(head))
            counts["speckit_tags"] += bool(_SPECKIT_TAG.search(head))
            counts["numbered"] += bool(NUMBER.match(head))
        i += 1
    return counts


__all__ = ["Kind", "detect", "detect_markdown"]
