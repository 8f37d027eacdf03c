"""Helpers for the claude-code backend's tests: agent files as teams keep them, the task
folder an attempt's run lives in, and the scripted server's fixture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.anthropic_server import RecordedRequest, content_text

MODEL = "claude-sonnet-4-6"  # `model: sonnet` in the agent files, through the worker's table


def agent_file(folder: Path, name: str, *, tools: str | None, body: str, **keys: str) -> Path:
    """A Claude Code agent file, as in a repository's `.claude/agents/` (no coord keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["---", f"name: {name}", f"description: {name} agent for the tests"]
    if tools is not None:
        lines.append(f"tools: {tools}")
    lines += [f"{key}: {value}" for key, value in keys.items()]
    path = folder / f"{name}.md"
    path.write_text("\n".join([*lines, "---", body, ""]))
    return path


def cc_task(task_id: str, specialist: str, prompt: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": task_id,
        "title": f"Task {task_id}",
        "specialist": specialist,
        "prompt": prompt,
        **extra,
    }


def run_folder(root: Path, execution_id: str, task_id: str, attempt: int = 1) -> Path:
    return root / "artifacts" / execution_id / "tasks" / task_id / f"attempt-{attempt}.claude-code"


def records(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "transcript.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def sessions(folder: Path) -> list[Path]:
    """Claude Code's own session files in the run's config folder."""
    return sorted((folder / "config" / "projects").glob("*/*.jsonl"))


def tool_names(request: RecordedRequest) -> list[str]:
    return sorted(str(tool.get("name")) for tool in request.body.get("tools") or [])


def user_text(request: RecordedRequest) -> str:
    """Every user message's text, tool results included."""
    parts = []
    for message in request.messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
            continue
        for block in content or []:
            if block.get("type") == "tool_result":
                parts.append(content_text(block.get("content")))
            else:
                parts.append(str(block.get("text") or ""))
    return "\n".join(parts)
