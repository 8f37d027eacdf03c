"""The optional extra: `claude-agent-sdk`, whose wheel bundles the Claude Code CLI."""

from __future__ import annotations

import importlib.util
from pathlib import Path

PACKAGE = "claude_agent_sdk"
INSTALL_HINT = (
    "install the extra where `coord worker` runs: pip install 'coord[claude-code]' "
    "(from a checkout: make install)"
)


def sdk_installed() -> bool:
    """The package can be imported here (checked without importing its 400 MB of CLI)."""
    return importlib.util.find_spec(PACKAGE) is not None


def bundled_cli() -> Path | None:
    """The Claude Code executable shipped in the package's wheel, or None."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        cli = Path(folder) / "_bundled" / "claude"
        if cli.is_file():
            return cli
    return None


def sdk_version() -> str:
    """The package's version, or "" when it is not installed."""
    if not sdk_installed():
        return ""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("claude-agent-sdk")
    except PackageNotFoundError:
        return ""
