"""Which tools a Claude specialist may use, from its front matter `tools:` (Claude Code tool
names: "Read", "Bash(git add:*)", "mcp__x__y", ...). Pure rules; the tools themselves are in
activities/claude/tools/."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# Claude Code tool names (compared case-insensitively) and what they grant here.
_VIEW_TOOLS = frozenset({"read", "notebookread"})
_WRITE_TOOLS = frozenset({"write", "edit", "multiedit", "notebookedit"})
_BASH_TOOLS = frozenset({"bash"})
_SEARCH_TOOLS = frozenset({"grep", "glob", "ls"})
# Known to Claude Code but not provided by this backend.
_UNAVAILABLE_TOOLS = frozenset(
    {
        "webfetch",
        "websearch",
        "task",
        "agent",
        "todowrite",
        "todoread",
        "bashoutput",
        "killshell",
        "killbash",
        "askuserquestion",
        "exitplanmode",
        "enterplanmode",
        "slashcommand",
        "skill",
        "listmcpresourcestool",
        "readmcpresourcetool",
    }
)
_TOOL_ENTRY = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_-]*)\s*(?:\((.*)\))?\s*", re.DOTALL)


@dataclass(frozen=True)
class ToolPermissions:
    """What a specialist may do, from its front matter `tools:`."""

    view: bool  # the editor's view
    write: bool  # the editor's create / str_replace / insert
    bash: bool
    search: bool  # the read-only `search` tool
    unknown: tuple[str, ...] = ()  # names we do not recognise (warn once)
    unavailable: tuple[str, ...] = ()  # Claude Code tools this backend does not provide
    # Entries with a scope, e.g. "Bash(git add:*)": the tool is granted whole, the scope is
    # not enforced (worth a warning: the specialist can do more than its definition says).
    unenforced_scopes: tuple[str, ...] = ()
    declared: tuple[str, ...] = ()  # the list as written; empty: not restricted

    def describe(self) -> str:
        """The declared tools for messages: "Read, Grep, Glob", or "all tools"."""
        return ", ".join(self.declared) if self.declared else "all tools"


def permissions_for(tools: Sequence[str]) -> ToolPermissions:
    """Permissions from Claude Code tool names ("Read", "Bash(git add:*)", "mcp__x__y", ...).

    An empty list means every tool, as when Claude Code's `tools` key is omitted.
    """
    declared = tuple(entry.strip() for entry in tools if entry.strip())
    if not declared:
        return ToolPermissions(view=True, write=True, bash=True, search=True)
    granted: set[str] = set()
    unknown: list[str] = []
    unavailable: list[str] = []
    scoped: list[str] = []
    for entry in declared:
        match = _TOOL_ENTRY.fullmatch(entry)
        if match is None:
            unknown.append(entry)
            continue
        name = match.group(1).lower()
        scope = (match.group(2) or "").strip()
        if name.startswith("mcp__") or name in _UNAVAILABLE_TOOLS:
            unavailable.append(entry)
            continue
        kinds = {
            "view": name in _VIEW_TOOLS,
            "write": name in _WRITE_TOOLS,
            "bash": name in _BASH_TOOLS,
            "search": name in _SEARCH_TOOLS,
        }
        kind = next((k for k, hit in kinds.items() if hit), None)
        if kind is None:
            unknown.append(entry)
            continue
        granted.add(kind)
        if scope and scope != "*":
            scoped.append(entry)
    return ToolPermissions(
        view="view" in granted,
        write="write" in granted,
        bash="bash" in granted,
        search="search" in granted,
        unknown=tuple(unknown),
        unavailable=tuple(unavailable),
        unenforced_scopes=tuple(scoped),
        declared=declared,
    )
