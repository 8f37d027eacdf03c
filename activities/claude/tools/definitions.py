"""The `tools` list a specialist's permissions give it, for the Messages API."""

from __future__ import annotations

import copy
from typing import Any

from activities.claude.tools.base import (
    BASH_NAME,
    BASH_TYPE,
    EDITOR_NAME,
    EDITOR_TYPE,
)
from activities.claude.tools.search import SearchTool
from coordinator.tool_rules import ToolPermissions


def tool_definitions(
    perms: ToolPermissions, *, max_characters: int | None = None
) -> list[dict[str, Any]]:
    """The `tools` list for the Messages API (without `finish`, without cache_control).

    The editor comes with view or write (a view-only editor refuses changes in its result);
    bash with Bash; `search` with Grep/Glob/LS, and also for a specialist that may read but
    has no bash to look around with. `max_characters` tells the API how much one view shows.
    """
    definitions: list[dict[str, Any]] = []
    if perms.view or perms.write:
        editor: dict[str, Any] = {"type": EDITOR_TYPE, "name": EDITOR_NAME}
        if max_characters is not None:
            editor["max_characters"] = max_characters
        definitions.append(editor)
    if perms.bash:
        definitions.append({"type": BASH_TYPE, "name": BASH_NAME})
    if perms.search or (perms.view and not perms.bash):
        definitions.append(copy.deepcopy(SearchTool.definition))
    return definitions
