"""The tools of a Claude specialist, confined to the task's git worktree, one module per tool
over a shared base:

- `editor.EditorTool`: the Anthropic-defined text editor (view / create / str_replace / insert).
- `bash.BashTool`: the Anthropic-defined bash tool, one fresh shell per command.
- `search.SearchTool`: our own read-only search for specialists granted Grep / Glob / LS.
- `base`: names, `ToolResult`, `resolve_inside` and reading the model's input.
- `definitions.tool_definitions`: the `tools` list a specialist's permissions give it.

Every tool takes whatever the model sent and answers with a `ToolResult`; a malformed call
gets an error result saying what is wrong, never an exception. Every path is resolved
(symlinks included) and must stay inside the worktree (`resolve_inside`). Which tools a
specialist gets is a pure rule of the core: coordinator/tool_rules.py (`permissions_for`).
"""

from activities.claude.tools.base import (
    BASH_NAME,
    BASH_TYPE,
    EDITOR_NAME,
    EDITOR_TYPE,
    SEARCH_NAME,
    PathOutsideWorkspace,
    ToolResult,
    resolve_inside,
)
from activities.claude.tools.bash import BashTool
from activities.claude.tools.definitions import tool_definitions
from activities.claude.tools.editor import DEFAULT_MAX_VIEW_CHARS, EditorTool
from activities.claude.tools.search import SearchTool
from coordinator.tool_rules import ToolPermissions, permissions_for

__all__ = [
    "BASH_NAME",
    "BASH_TYPE",
    "DEFAULT_MAX_VIEW_CHARS",
    "EDITOR_NAME",
    "EDITOR_TYPE",
    "SEARCH_NAME",
    "BashTool",
    "EditorTool",
    "PathOutsideWorkspace",
    "SearchTool",
    "ToolPermissions",
    "ToolResult",
    "permissions_for",
    "resolve_inside",
    "tool_definitions",
]
