"""The backends a specialist runs on, and what each implies for the workflows.

- `claude`: coord's own agent loop over the Messages API (activities/claude/);
- `claude-code`: Claude Code itself, through the `claude-agent-sdk` package
  (activities/claude_code/, the optional extra `coord[claude-code]`);
- `command`: a shell command line in the task's worktree.

The two agent backends spend tokens: the workflows check budgets before their attempts and
add up what they spent. Command specialists spend nothing that coord can see.
"""

from __future__ import annotations

from typing import Literal

SpecialistBackend = Literal["claude", "claude-code", "command"]
BACKENDS: tuple[SpecialistBackend, ...] = ("claude", "claude-code", "command")
# Backends that run a model with a definition file's prompt and tools.
AGENT_BACKENDS = frozenset({"claude", "claude-code"})


def spends_tokens(backend: str) -> bool:
    """The backend calls a model and is metered: budgets apply before its attempts."""
    return backend in AGENT_BACKENDS


def is_agent(backend: str) -> bool:
    """The backend runs an agent from a definition file (prompt, tools, model): such a
    specialist can be routed to by its name and description."""
    return backend in AGENT_BACKENDS
