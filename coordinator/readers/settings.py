"""A Markdown plan's settings: the one top-level ```` ```yaml ```` block, read with the YAML
plan loader so its problems are located at lines of the Markdown file, and merged with
defaults into the plan data every reader produces."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from coordinator.loader import LoadIssue, PathKey, load_plan_text
from coordinator.plan import Plan
from coordinator.readers.model import Issues

# A plan name and a generated task id are slugs of a title, kept well under the 64 allowed.
SLUG_LENGTH = 48


def slugify(text: str, max_length: int = SLUG_LENGTH) -> str:
    """``"Add a /v1/faces endpoint!"`` -> ``"add-a-v1-faces-endpoint"`` (may be empty)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if len(slug) > max_length:
        cut = slug[:max_length]
        slug = (cut.rsplit("-", 1)[0] if "-" in cut else cut).strip("-")
    return slug


def normalize_id(text: str) -> str:
    """How a task id written in a plan becomes a plan id: ``T1`` -> ``t1``,
    ``Task 12`` -> ``task-12``, `` `schema` `` -> ``schema``."""
    return re.sub(r"\s+", "-", text.strip().strip("`").strip()).lower()


# What a plan's settings may hold: the plan's fields, but the tasks (and what readers set).
_SETTING_KEYS = frozenset(Plan.model_fields) - {"tasks", "source"}


def is_settings_block(info: str, body: list[str]) -> bool:
    """A ```yaml block of plan settings, not a YAML example that happens to come first
    (a skill's front matter, a config file to write): every key is a plan setting."""
    if info.split()[:1] not in (["yaml"], ["yml"]):
        return False
    try:
        data = yaml.safe_load("\n".join(body))
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError):
        return True  # meant as settings, and broken: read it, so the problem is reported
    return isinstance(data, dict) and bool(data) and set(map(str, data)) <= _SETTING_KEYS


@dataclass
class Settings:
    values: dict[str, Any] = field(default_factory=dict)
    lines: dict[PathKey, int] = field(default_factory=dict)
    line: int | None = None  # the block's opening fence


def read_settings_block(
    settings: Settings, fence_line: int, body: list[str], source: str, issues: Issues
) -> None:
    """Read one ```yaml block into `settings` (a second one is an error)."""
    if settings.line is not None:
        issues.error(
            fence_line,
            f"a second YAML settings block (the first is on line {settings.line}); "
            "merge them, or indent an example under a task to make it part of its prompt",
        )
        return
    settings.line = fence_line
    text = "\n".join(body) + "\n"
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError):
        data = {}  # not YAML: the loader below says what and where
    if data is None:
        return  # an empty block: no settings
    if not isinstance(data, dict):
        issues.error(
            fence_line + 1,
            "the YAML block must be a mapping of plan settings (repository:, "
            "base_branch:, gates:, ...)",
        )
        return
    loaded = load_plan_text(text, source=source, fmt="yaml")
    for issue in loaded.issues:
        line = None if issue.line is None else issue.line + fence_line
        issues.add(LoadIssue(f"YAML block: {issue.message}", issue.path, line, issue.column))
    if loaded.data is None:
        return
    values = dict(loaded.data)
    if "tasks" in values:
        line = loaded.lines.get(("tasks",))
        issues.error(
            None if line is None else line + fence_line,
            "tasks are written as `- [ ]` items in the Markdown, not in the YAML block",
            ("tasks",),
        )
        del values["tasks"]
    settings.values = values
    settings.lines = {
        path: line + fence_line
        for path, line in loaded.lines.items()
        if path and path[0] != "tasks"
    }


def plan_settings(
    settings: Settings,
    title: str | None,
    title_line: int | None,
    defaults: dict[str, Any],
    lines: dict[PathKey, int],
    *,
    name_hint: str | None = None,
) -> dict[str, Any]:
    """The plan data's settings: the YAML block's, then defaults, the name from the title
    (or `name_hint`, e.g. the feature folder) unless the block names one."""
    data: dict[str, Any] = {}
    name_line: int | None = None
    if "name" in settings.values:
        data["name"] = settings.values["name"]
    elif name_hint and slugify(name_hint):
        data["name"] = slugify(name_hint)
    elif title is not None and slugify(title):
        data["name"] = slugify(title)
        name_line = title_line
    elif "name" in defaults:
        data["name"] = defaults["name"]
    for key, value in defaults.items():
        if key != "name" and key not in settings.values:
            data[key] = value
    for key, value in settings.values.items():
        if key != "name":
            data[key] = value
    lines.update(settings.lines)
    lines[()] = settings.line or title_line or 1
    if name_line is not None:
        lines[("name",)] = name_line
    return data


def add_gates(
    data: dict[str, Any], gates: dict[str, list[tuple[Any, int]]], lines: dict[PathKey, int]
) -> None:
    """Gates found in gate sections, after the YAML block's own."""
    for level, found in gates.items():
        if not found:
            continue
        existing = data.get(level, [])
        if not isinstance(existing, list):
            continue  # the model reports the YAML value's type; nothing to add to
        data[level] = [*existing, *(gate for gate, _ in found)]
        for k, (_, line) in enumerate(found, start=len(existing)):
            lines[(level, k)] = line
        lines.setdefault((level,), found[0][1])


__all__ = [
    "Settings",
    "add_gates",
    "is_settings_block",
    "normalize_id",
    "plan_settings",
    "read_settings_block",
    "slugify",
]
