"""Before any token is spent: what a worker (or the machine `coord validate` runs on) lacks
to run Claude Code specialists, and what an agent file asks for that it will not get."""

from __future__ import annotations

import os
import socket

from activities.claude_code.sdk import INSTALL_HINT, sdk_installed
from coordinator.claude_code import requirements_problem, scoped_tools, unknown_tools


def missing_requirements(callers: list[str], *, worker: bool = True) -> str | None:
    """One line naming what to install or set here, or None when nothing is missing.
    `worker` False: said by `coord validate`, about the machine it runs on."""
    host = socket.gethostname()
    return requirements_problem(
        callers,
        sdk_installed=sdk_installed(),
        key_set=bool(os.environ.get("ANTHROPIC_API_KEY")),
        install_hint=INSTALL_HINT,
        place=f"the worker on {host}" if worker else f"this machine ({host})",
    )


def tool_warnings(name: str, source: str, tools: list[str]) -> list[str]:
    """Tools a Claude Code specialist names that it will not get as written."""
    warnings = []
    if unknown := unknown_tools(tools):
        warnings.append(
            f"{source}: specialist {name}: tools Claude Code does not know: {', '.join(unknown)}"
        )
    if scoped := scoped_tools(tools):
        warnings.append(
            f"{source}: specialist {name}: tool scopes are not enforced (permissions are "
            f"bypassed, the whole tool is granted): {', '.join(scoped)}"
        )
    return warnings
