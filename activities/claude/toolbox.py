"""What the agent loop offers the model and how a call becomes a result: the tools a
specialist's permissions give it (with `finish` last), and the small pieces that turn a
`tool_use` block into a `tool_result` (or a `FinishReport`)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from activities.claude.tools import (
    BashTool,
    EditorTool,
    SearchTool,
    ToolPermissions,
    ToolResult,
    tool_definitions,
)
from activities.jail import Sandbox
from coordinator.claude import ClaudeSettings, FinishReport, Usage

FINISH_TOOL: dict[str, Any] = {
    "name": "finish",
    "description": (
        "End your work on this task. Call it once, when the task is done (status 'done') or "
        "when you cannot go on without a human (status 'blocked', saying what they must "
        "decide). Reviewers also give a verdict and findings."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["done", "blocked"]},
            "summary": {"type": "string", "description": "what you did, or why you are blocked"},
            "files_changed": {"type": "array", "items": {"type": "string"}},
            "notes_for_reviewer": {"type": "string"},
            "verdict": {"type": "string", "enum": ["approve", "changes_requested"]},
            "findings": {
                "type": "array",
                "items": {"type": "string"},
                "description": "reviewers: 'path:line: what to change', most important first",
            },
        },
        "required": ["status", "summary"],
    },
}

Tool = Callable[[object], Awaitable[ToolResult]]


@dataclass(frozen=True)
class BashSetup:
    """What the bash tool's commands run with (the activity shell builds it)."""

    env: dict[str, str]
    sandbox: Sandbox
    slot: Path  # the process groups of the task's specialist commands
    log_dir: Path  # one log per command


def tools_for(
    perms: ToolPermissions, root: Path, settings: ClaudeSettings, bash: BashSetup
) -> tuple[dict[str, Tool], list[dict[str, Any]]]:
    """(the tools by name, their definitions for the API, `finish` last)."""
    handlers: dict[str, Tool] = {}
    if perms.view or perms.write:
        handlers["str_replace_based_edit_tool"] = EditorTool(
            root, allow_write=perms.write, tools=perms.declared
        )
    if perms.bash:
        handlers["bash"] = BashTool(
            root,
            env=bash.env,
            timeout_s=settings.bash_timeout,
            output_limit=settings.tool_output_chars,
            log_dir=bash.log_dir,
            secret_names=[*settings.secret_env],
            sandbox=bash.sandbox,
            slot=bash.slot,
        )
    definitions = tool_definitions(perms)
    if any(d.get("name") == "search" for d in definitions):
        handlers["search"] = SearchTool(root)
    return handlers, [*definitions, FINISH_TOOL]


def finish_call(tool_input: object) -> tuple[ToolResult, FinishReport | None]:
    try:
        return ToolResult(content="Finished."), FinishReport.model_validate(tool_input)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in err.errors()
        )
        return ToolResult(content=f"finish: invalid input ({problems})", is_error=True), None


def tool_result(tool_use_id: str, result: ToolResult) -> dict[str, Any]:
    return {
        "type": "tool_result",
        "tool_use_id": tool_use_id,
        "content": result.content,
        **({"is_error": True} if result.is_error else {}),
    }


def finish_of(block: dict[str, Any]) -> FinishReport | None:
    try:
        return FinishReport.model_validate(block.get("input"))
    except ValidationError:
        return None


def signature(block: dict[str, Any]) -> str:
    return f"{block.get('name')}:{json.dumps(block.get('input'), sort_keys=True, default=str)}"


def usage_of(message: Any) -> Usage:
    usage = getattr(message, "usage", None)
    if usage is None:
        return Usage()
    return Usage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_creation_input_tokens=getattr(usage, "cache_creation_input_tokens", 0) or 0,
        cache_read_input_tokens=getattr(usage, "cache_read_input_tokens", 0) or 0,
    )
