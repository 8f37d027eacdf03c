"""The `claude-code` backend, the parts free of I/O: Claude Code's tool names, a reviewer's
verdict read from its last message, and what `coord validate` says when a worker lacks
the extra or the key."""

from __future__ import annotations

import re
from typing import Literal

# The tools Claude Code offers under these names (its agent files use them). `Task` is the
# older name of `Agent`, the sub-agent tool.
CLAUDE_CODE_TOOLS = frozenset(
    {
        "Agent",
        "Bash",
        "BashOutput",
        "Edit",
        "ExitPlanMode",
        "Glob",
        "Grep",
        "KillShell",
        "LS",
        "MultiEdit",
        "NotebookEdit",
        "NotebookRead",
        "Read",
        "SlashCommand",
        "Task",
        "TodoRead",
        "TodoWrite",
        "WebFetch",
        "WebSearch",
        "Write",
    }
)
SUBAGENT_TOOLS = frozenset({"Task", "Agent"})
VERDICT_LINE = re.compile(r"^\W*verdict\W*[:=]?\s*(approve|changes[_ -]requested)\b", re.I)
FINDING_LINE = re.compile(r"^\s*[-*]\s+(\S+:\d+.*)$")

Verdict = Literal["approve", "changes_requested"]


def tool_names(tools: list[str]) -> list[str]:
    """The tool names of an agent file's `tools:` (a scope such as `Bash(git diff:*)` names
    the tool `Bash`), in order, once each."""
    return list(dict.fromkeys(tool.split("(", 1)[0].strip() for tool in tools if tool.strip()))


def unknown_tools(tools: list[str]) -> list[str]:
    """Names Claude Code does not know (MCP tools, `mcp__...`, are its own business)."""
    return [
        name
        for name in tool_names(tools)
        if name not in CLAUDE_CODE_TOOLS and not name.startswith("mcp__")
    ]


def scoped_tools(tools: list[str]) -> list[str]:
    """Tools given with a scope (`Bash(git diff:*)`): permissions are bypassed (nobody is
    there to answer a prompt), so the whole tool is granted."""
    return [tool for tool in tools if "(" in tool]


def read_verdict(text: str) -> tuple[Verdict | None, list[str]]:
    """A reviewer's verdict and findings from its last message: the last `VERDICT: ...`
    line, and the `- path:line: ...` lines. No verdict line: no verdict."""
    verdict: Verdict | None = None
    findings: list[str] = []
    for line in text.splitlines():
        if match := VERDICT_LINE.match(line.strip()):
            said = match.group(1).lower()
            verdict = "approve" if said == "approve" else "changes_requested"
        elif match := FINDING_LINE.match(line):
            findings.append(match.group(1).strip())
    return verdict, findings


def requirements_problem(
    callers: list[str], *, sdk_installed: bool, key_set: bool, install_hint: str, place: str
) -> str | None:
    """One line saying what a worker must install or set before Claude Code specialists can
    run there, or None when it has both. `callers` are "name (task x)" strings; `place` is
    "the worker on HOST" or "this machine (HOST)"."""
    if not callers:
        return None
    missing = []
    if not sdk_installed:
        missing.append(f"the claude-agent-sdk package: {install_hint}")
    if not key_set:
        missing.append("ANTHROPIC_API_KEY: set it where `coord worker` runs")
    if not missing:
        return None
    return (
        f"Claude Code specialists {', '.join(callers)} cannot run on {place}; "
        f"it needs {'; and '.join(missing)}"
    )
