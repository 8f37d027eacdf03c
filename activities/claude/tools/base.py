"""What every tool of a Claude specialist shares: the tool names, the `ToolResult` that goes
back to the model, confinement to the worktree (`resolve_inside`) and reading the model's
input (a malformed call raises `BadInput`, whose message goes back as an error result)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

EDITOR_TYPE = "text_editor_20250728"
EDITOR_NAME = "str_replace_based_edit_tool"
BASH_TYPE = "bash_20250124"
BASH_NAME = "bash"
SEARCH_NAME = "search"

BINARY_SNIFF_BYTES = 8192  # a NUL byte in this much of a file: binary, not shown


class ToolResult(BaseModel):
    """What goes back to the model as the `tool_result` block."""

    content: str
    is_error: bool = False


def error_result(message: str) -> ToolResult:
    return ToolResult(content=message, is_error=True)


class PathOutsideWorkspace(Exception):
    """A path the model gave was refused: outside the worktree (also through a symlink), a
    write into `.git`, or not a usable path at all. The message names the path."""


def resolve_inside(root: Path, path: str, *, write: bool = False) -> Path:
    """The real location of `path` (relative to `root`, or absolute), which must be inside
    `root` once both are resolved.

    Symlinks are followed wherever they exist, so a link inside the worktree that points out
    is refused; for a path that does not exist yet, its nearest existing parent is resolved
    and `..` after it is applied to that. With `write`, paths inside a `.git` directory (or
    the `.git` file of a worktree) are refused too: git's own data is not the task's.
    """
    if not path.strip():
        raise PathOutsideWorkspace("the path is empty: give a file or directory in the worktree")
    if "\x00" in path:
        raise PathOutsideWorkspace(f"the path {path!r} contains a NUL character")
    base = root.resolve()
    candidate = Path(path) if os.path.isabs(path) else base / path
    try:
        resolved = candidate.resolve()  # not strict: a missing tail is appended as given
    except (OSError, RuntimeError) as err:  # a symlink loop (RuntimeError before 3.13)
        raise PathOutsideWorkspace(f"the path {path} cannot be resolved: {err}") from err
    if resolved != base and base not in resolved.parents:
        raise PathOutsideWorkspace(
            f"the path {path} is outside the worktree {base} (it resolves to {resolved}); "
            "only files inside the worktree can be used"
        )
    if write and any(part.lower() == ".git" for part in resolved.relative_to(base).parts):
        raise PathOutsideWorkspace(
            f"the path {path} is inside .git, which holds git's own data: it cannot be "
            "changed with the editor"
        )
    return resolved


class BadInput(Exception):
    """A call the model got wrong; the message goes back as an error result."""


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def input_object(tool_input: object, tool: str) -> dict[str, Any]:
    if not isinstance(tool_input, dict):
        raise BadInput(f"the {tool} tool takes a JSON object as input, got {json_type(tool_input)}")
    return tool_input


def required_str(data: Mapping[str, Any], key: str, context: str) -> str:
    if key not in data or data[key] is None:
        raise BadInput(f"missing required parameter `{key}` {context}")
    return as_str(data[key], key)


def optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else as_str(value, key)


def as_str(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise BadInput(f"parameter `{key}` must be a string, got {json_type(value)}")
    return value


def as_int(value: object, key: str) -> int:
    # JSON has one number type: 3.0 is 3, 3.5 is not a line number.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"parameter `{key}` must be an integer, got {json_type(value)}")
    return value


def encode_utf8(text: str, key: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:  # a lone surrogate from a JSON escape
        raise BadInput(f"parameter `{key}` cannot be written as UTF-8: {err.reason}") from err
