"""Read a plan file into plain data plus a map from data paths to line numbers.

Validation reports problems against paths like ``("tasks", 3, "depends_on", 0)``; the line map
turns them into ``plan.yaml:12``. Nothing here raises for bad input: every problem comes back
as a `LoadIssue` so the caller can report it with the rest. YAML and JSON are read here;
the other plan formats (Markdown breakdowns, spec-kit, Kiro, Taskmaster) by
`coordinator.readers`, into the same `LoadedPlan`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from coordinator.progress import PlanSource

PathKey = tuple[str | int, ...]
LineMap = Mapping[PathKey, int]
PlanFormat = Literal["yaml", "json"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class LoadIssue:
    """A problem found while reading the file: an error, unless a Markdown breakdown has
    something to point out that does not stop it (e.g. checkbox items that are not tasks)."""

    message: str
    path: PathKey = ()
    line: int | None = None
    column: int | None = None
    severity: Literal["error", "warning"] = "error"


@dataclass(frozen=True)
class Edge:
    """One dependency of the plan and where it came from: `task` waits for `depends_on`
    because of `why` ("phase order", "same file src/app.js", "depends on (line 12)")."""

    task: str
    depends_on: str
    why: str


@dataclass
class LoadedPlan:
    """The parsed document. `data` is None when the file could not be read at all."""

    source: str
    data: dict[str, Any] | None
    lines: dict[PathKey, int] = field(default_factory=dict)
    issues: list[LoadIssue] = field(default_factory=list)
    # Said after "the plan has no tasks" (a breakdown knows why there are none).
    no_tasks_hint: str = ""
    # Which reader read it (None: YAML or JSON plan data), and what it inferred.
    reader: str | None = None
    edges: list[Edge] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Tasks were found and all are done: nothing to run, which is not an error.
    nothing_to_do: bool = False
    plan_source: PlanSource | None = None
    # Ids of tasks whose specialist is a marker (`@name`): unknown names fall back.
    soft_specialists: frozenset[str] = frozenset()


def format_path(path: PathKey) -> str:
    """``("tasks", 3, "depends_on", 0)`` -> ``"tasks[3].depends_on[0]"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def line_for(lines: LineMap, path: PathKey) -> int | None:
    """Line of `path`, or of its nearest ancestor that is in the file (e.g. a missing field)."""
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None


def read_plan_bytes(path: Path) -> str | LoadedPlan:
    """The file's text, or a LoadedPlan saying why it cannot be read."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        return fatal(source, f"cannot read the plan: {path} is a directory, not a file")
    except FileNotFoundError:
        return fatal(source, f"cannot read the plan: {path} does not exist")
    except OSError as exc:
        return fatal(source, f"cannot read the plan: {exc.strerror or exc}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return fatal(
            source, f"cannot read the plan: not UTF-8 text (bad byte at offset {exc.start})"
        )


def load_plan_text(text: str, *, source: str, fmt: PlanFormat | None = None) -> LoadedPlan:
    """YAML (the default) or JSON plan data."""
    if fmt == "json":
        return _load_json(text, source)
    return _load_yaml(text, source)


def fatal(
    source: str, message: str, line: int | None = None, column: int | None = None
) -> LoadedPlan:
    return LoadedPlan(source, None, issues=[LoadIssue(message, (), line, column)])


def _load_yaml(text: str, source: str) -> LoadedPlan:
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except (yaml.reader.ReaderError, yaml.MarkedYAMLError) as exc:
        return fatal(source, *_located_yaml_error(exc, text))
    except yaml.YAMLError as exc:
        return fatal(source, " ".join(str(exc).split()))
    except RecursionError:
        return fatal(source, "the plan is nested too deeply")
    except (ValueError, TypeError, OverflowError) as exc:
        # PyYAML's constructors can raise these for odd scalars (e.g. a date like 2024-13-45).
        return fatal(source, f"cannot parse the plan: {exc}")
    if node is None or data is None:
        return fatal(source, "the plan is empty")
    if not isinstance(data, dict):
        return _not_a_mapping(source, data, node.start_mark.line + 1)
    lines, issues = _walk(node)
    return LoadedPlan(source, data, lines, issues)


def _load_json(text: str, source: str) -> LoadedPlan:
    if not text.strip():
        return fatal(source, "the plan is empty")
    duplicates: list[str] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                duplicates.append(key)
            seen.add(key)
        return dict(pairs)

    try:
        data = json.loads(text, object_pairs_hook=pairs_hook)
    except json.JSONDecodeError as exc:
        return fatal(source, f"invalid JSON: {exc.msg}", exc.lineno, exc.colno)
    except RecursionError:
        return fatal(source, "the plan is nested too deeply")
    # JSON is (nearly) YAML, so the YAML composer gives us line numbers and duplicate keys.
    # JSON strings cannot hold raw tabs, so turning every tab into a space keeps the same
    # content and lines while sidestepping PyYAML's refusal of tab indentation.
    if data is None:
        return fatal(source, "the plan is empty")
    if not isinstance(data, dict):
        return _not_a_mapping(source, data, 1)
    try:
        node = yaml.compose(text.replace("\t", " "), Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        node = None  # no line numbers then, but the data is sound
    if node is None:
        issues = [LoadIssue(f"duplicate key '{key}'") for key in dict.fromkeys(duplicates)]
        return LoadedPlan(source, data, {(): 1}, issues)
    lines, issues = _walk(node)
    return LoadedPlan(source, data, lines, issues)


def _not_a_mapping(source: str, data: object, line: int) -> LoadedPlan:
    if isinstance(data, list):
        kind = "a list"
    elif isinstance(data, str):
        kind = "text"
    else:
        kind = f"a single {type(data).__name__} value"
    return fatal(
        source,
        f"the plan must be a mapping of settings (name:, repository:, tasks:), not {kind}",
        line,
    )


def _located_yaml_error(
    exc: yaml.reader.ReaderError | yaml.MarkedYAMLError, text: str
) -> tuple[str, int | None, int | None]:
    """(message, line, column), both 1-based."""
    if isinstance(exc, yaml.reader.ReaderError):  # a control character: only an offset known
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return f"invalid YAML: unacceptable character #x{code:04x}: {exc.reason}", line, column
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return _yaml_message(exc), None, None
    return _yaml_message(exc), mark.line + 1, mark.column + 1


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    """The parser's message on one line, e.g. "could not find expected ':'"."""
    parts = []
    if exc.context:
        context = str(exc.context)
        if exc.context_mark is not None and exc.context_mark is not exc.problem_mark:
            context += f" (line {exc.context_mark.line + 1})"
        parts.append(context)
    if exc.problem:
        parts.append(str(exc.problem))
    return "invalid YAML: " + " ".join(", ".join(parts).split())


def _walk(root: yaml.Node) -> tuple[dict[PathKey, int], list[LoadIssue]]:
    """Map every path to its line, and flag duplicate keys (PyYAML silently keeps the last).

    Iterative, and each node is visited once: an alias shares its anchor's node, so a
    self-referencing or exponentially aliased document cannot make this loop forever.
    """
    lines: dict[PathKey, int] = {(): root.start_mark.line + 1}
    issues: list[LoadIssue] = []
    seen: set[int] = set()
    stack: list[tuple[PathKey, yaml.Node]] = [((), root)]
    while stack:
        path, node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            # The constructed data keeps the last of duplicate keys, so lines follow the last.
            first_line: dict[str, int] = {}
            last: dict[str, yaml.Node] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = str(key_node.value)
                line = key_node.start_mark.line + 1
                if key in first_line:
                    issues.append(
                        LoadIssue(
                            f"duplicate key '{key}' (first defined on line {first_line[key]})",
                            (*path, key),
                            line,
                            key_node.start_mark.column + 1,
                        )
                    )
                else:
                    first_line[key] = line
                lines[(*path, key)] = line
                last[key] = value_node
            for key, value_node in last.items():
                stack.append(((*path, key), value_node))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[(*path, index)] = item.start_mark.line + 1
                stack.append(((*path, index), item))
    return lines, issues
