"""Plan readers: the plans people already have, read into the plan data coord runs.

One module per format: `breakdown` (the seeds' Markdown breakdowns), `speckit`
(`specs/NNN-feature/tasks.md`), `kiro` (Kiro and Agent OS `tasks.md`), `headings`
(`### Task N:` plans) and `taskmaster` (`tasks.json`); `detect` picks one by content. Each
returns a `ParsedPlan`: plan data with a line for every path, every problem found, where
each dependency came from, and what ticking finished tasks back in the file needs. Pure:
text in, data out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coordinator.loader import LoadedPlan, load_plan_text
from coordinator.readers.breakdown import parse_breakdown
from coordinator.readers.detect import Kind, detect, detect_markdown
from coordinator.readers.headings import read_headings
from coordinator.readers.kiro import read_kiro
from coordinator.readers.model import READER_TITLES, ParsedPlan, ReaderName, TaskLine
from coordinator.readers.speckit import read_speckit
from coordinator.readers.taskmaster import read_taskmaster


def read_markdown(
    text: str,
    source: str,
    *,
    reader: ReaderName | None = None,
    defaults: Mapping[str, Any] | None = None,
    name_hint: str | None = None,
) -> ParsedPlan:
    """A Markdown plan, with the reader its content calls for (or the one given)."""
    kind = reader or detect_markdown(text)
    if kind == "speckit":
        return read_speckit(text, source, defaults=defaults, name_hint=name_hint)
    if kind == "kiro":
        return read_kiro(text, source, defaults=defaults, name_hint=name_hint)
    if kind == "headings":
        return read_headings(text, source, defaults=defaults, name_hint=name_hint)
    return parse_breakdown(text, source, defaults=defaults)


def read_plan_text(
    text: str,
    source: str,
    *,
    name: str = "",
    tag: str | None = None,
    defaults: Mapping[str, Any] | None = None,
    name_hint: str | None = None,
) -> LoadedPlan:
    """Any plan file's text (`name` is its file name, a hint): YAML or JSON plan data, a
    Taskmaster tasks.json, or a Markdown plan."""
    kind: Kind = detect(text, name)
    if kind == "yaml" or kind == "json":
        return load_plan_text(text, source=source, fmt=kind)
    if kind == "taskmaster":
        read = read_taskmaster(text, source, tag=tag, defaults=defaults, name_hint=name_hint)
        if isinstance(read, list):
            return LoadedPlan(source, None, issues=read, reader=kind)
        return read.to_loaded()
    return read_markdown(
        text, source, reader=kind, defaults=defaults, name_hint=name_hint
    ).to_loaded()


__all__ = [
    "READER_TITLES",
    "ParsedPlan",
    "ReaderName",
    "TaskLine",
    "detect",
    "parse_breakdown",
    "read_markdown",
    "read_plan_text",
]
