"""The system prompt of a Claude specialist: its definition's body, then the task brief.

The brief says what the task is, which files it owns, how the repository is laid out, what
failed last time and what a human said, and carries the context documents (capped, with a
note when cut). It is rebuilt identically when a retried activity resumes a transcript.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

from activities.git import SAFE_CONFIG, git_env
from coordinator.work import SpecialistRequest

LAYOUT_PATHS = 200  # paths listed in the layout summary; the rest are counted

_ROLE_INSTRUCTIONS = {
    "task": (
        "Work only inside the repository (your current directory). Make the change, check it "
        "(run the tests or the relevant gate commands with bash when you have it), then call "
        "the `finish` tool with status `done`, a one-paragraph summary, the files you "
        "changed and notes for the reviewer. If you cannot do the task (missing information, "
        "a contradiction in the task), call `finish` with status `blocked` and say exactly "
        "what a human must decide. Do not commit: the coordinator commits your work."
    ),
    "fix": (
        "Make the smallest correct change that makes the failure below pass, without "
        "disabling tests or gates. Then call `finish` with status `done` and what you "
        "changed, or `blocked` with what a human must decide. Do not commit."
    ),
    "review": (
        "You review; you do not change files. Read the changed files and the code around "
        "them, then call `finish` with status `done`, `verdict` `approve` or "
        "`changes_requested`, and `findings` as 'path:line: what to change' (most important "
        "first). Approve when nothing blocks the change."
    ),
}


def system_prompt(
    request: SpecialistRequest, definition: str, *, context_chars: int, tools_note: str
) -> str:
    parts = [definition.strip(), "", "# Your task", "", *task_lines(request)]
    parts += brief_sections(request, context_chars=context_chars)
    parts += ["", "# How you work here", "", _ROLE_INSTRUCTIONS[request.role], tools_note]
    return "\n".join(parts).strip() + "\n"


def task_lines(request: SpecialistRequest, *, heading: str = "") -> list[str]:
    """The task: its title (after `heading`, "# " to make it one), prompt and owned files."""
    lines = [f"{heading}Task `{request.task_id}`: {request.task_title}"]
    if request.task_prompt.strip():
        lines += ["", request.task_prompt.strip()]
    if request.files:
        lines += ["", "Files this task owns (change these; others only when unavoidable):"]
        lines += [f"- {path}" for path in request.files]
    return lines


def brief_sections(request: SpecialistRequest, *, context_chars: int) -> list[str]:
    """What the specialist reads after the task, each section led by a blank line: the
    repository's layout, the context documents (at most `context_chars`), what failed last
    time and a human's guidance."""
    parts: list[str] = []
    layout = repository_layout(Path(request.cwd))
    if layout:
        parts += ["", "# Repository layout", "", layout]
    context = context_documents(request.context_paths, context_chars)
    if context:
        parts += ["", "# Context documents", "", context]
    if request.feedback:
        parts += [
            "",
            "# What went wrong last time",
            "",
            f"This is attempt {request.attempt}. The previous attempt failed:",
            "",
            "```",
            request.feedback.strip(),
            "```",
        ]
    if request.guidance:
        parts += [
            "",
            "# Guidance from a human (takes precedence over your own judgement)",
            "",
            request.guidance.strip(),
        ]
    return parts


def repository_layout(worktree: Path) -> str:
    """Tracked files: the first LAYOUT_PATHS paths and a count per top-level folder."""
    try:
        listed = subprocess.run(
            ["git", *SAFE_CONFIG, "ls-files"],
            cwd=worktree,
            env=git_env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return ""
    if not listed:
        return "(no tracked files yet)"
    lines = [f"{len(listed)} tracked files."]
    folders = Counter(path.split("/", 1)[0] + "/" for path in listed if "/" in path)
    if folders:
        lines.append(
            "Top-level folders: "
            + ", ".join(f"{name} ({count})" for name, count in sorted(folders.items()))
        )
    lines += ["", *listed[:LAYOUT_PATHS]]
    if len(listed) > LAYOUT_PATHS:
        lines.append(f"... and {len(listed) - LAYOUT_PATHS} more (use the tools to look).")
    return "\n".join(lines)


def context_documents(paths: list[str], limit: int) -> str:
    """The documents one after the other, at most `limit` characters in all."""
    parts: list[str] = []
    left = limit
    for name in paths:
        path = Path(name)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as err:
            parts.append(f"## {name}\n\n(could not be read: {err.strerror or err})")
            continue
        if left <= 0:
            parts.append(f"## {name}\n\n(left out: the context limit of {limit} characters)")
            continue
        if len(text) > left:
            text = (
                text[:left]
                + f"\n\n[cut: {len(text) - left} of {len(text)} characters left out; read the "
                "file itself for the rest]"
            )
        left -= len(text)
        parts.append(f"## {name}\n\n{text.strip()}")
    return "\n\n".join(parts)
