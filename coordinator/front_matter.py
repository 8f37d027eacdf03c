"""The front matter of a specialist file: YAML between two '---' lines, read with the line of
each key so that every problem names its file and line."""

from __future__ import annotations

from typing import Any

import yaml


class SpecialistError(ValueError):
    """A specialist definition that cannot be used.

    `messages` holds one line per problem, each starting with the source (and `:line` when
    known), so that a loader can report every problem of every file at once.
    """

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = list(messages)


def where(source: str, line: int | None) -> str:
    return f"{source}:{line}" if line is not None else source


def split_front_matter(text: str, source: str) -> tuple[str, str]:
    """Return (front matter, body). The front matter starts on line 2 of the file."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise SpecialistError(
            [
                f"{source}:1: no front matter: a specialist file starts with a '---' line, "
                "then YAML with at least 'name' and 'description', then another '---' line"
            ]
        )
    for index in range(1, len(lines)):
        if lines[index].strip() == "---":
            return "".join(lines[1:index]), "".join(lines[index + 1 :])
    raise SpecialistError([f"{source}:1: front matter is not closed: no second '---' line"])


def _yaml_error_message(exc: yaml.YAMLError, front: str, source: str) -> str:
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return f"{source}: invalid YAML in front matter: {exc}"
    # Marks are 0-based within the front matter, which starts on line 2 of the file.
    line = exc.problem_mark.line + 2
    detail = exc.problem or str(exc)
    if exc.context and exc.context_mark is not None:
        detail += f" ({exc.context} at line {exc.context_mark.line + 2})"
    source_lines = front.splitlines()
    if "mapping values are not allowed" in detail and exc.problem_mark.line < len(source_lines):
        # The usual culprit in agent libraries: an unquoted description containing ": ".
        _, _, value = source_lines[exc.problem_mark.line].partition(": ")
        if ": " in value:
            detail += "; a value containing ': ' must be quoted"
    return f"{source}:{line}: invalid YAML in front matter: {detail}"


def load_yaml(front: str, source: str) -> tuple[Any, dict[str, int], list[str]]:
    """Parse the front matter. Returns (data, line of each top-level key, warnings)."""
    try:
        data = yaml.safe_load(front)
        node = yaml.compose(front, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise SpecialistError([_yaml_error_message(exc, front, source)]) from exc
    except RecursionError as exc:
        raise SpecialistError([f"{source}: front matter is nested too deeply"]) from exc
    except (ValueError, TypeError, OverflowError) as exc:
        # PyYAML's constructors raise these for odd scalars (e.g. a date like 2024-13-45).
        raise SpecialistError([f"{source}: cannot read front matter: {exc}"]) from exc
    key_lines: dict[str, int] = {}
    warnings: list[str] = []
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 2
            if key in key_lines:
                # PyYAML keeps the last one silently; say so, it is usually a paste mistake.
                warnings.append(f"{source}:{line}: key '{key}' is repeated; the last one is used")
            key_lines[key] = line
    return data, key_lines, warnings


def split_tools(value: str) -> list[str]:
    """Split "Read, Bash(git add:*, git commit:*)" on commas outside parentheses."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in value:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]
