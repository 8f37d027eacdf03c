"""The `coord` command: one entry point for the server, the worker and executions.

Each command lives in its own module, imported only when that command runs: `coord status`
does not pay for the worker's SDKs (anthropic, PyGithub, every workflow), so it starts in a
fraction of a second. `coord --help` (or an unknown command) imports them all.
"""

from __future__ import annotations

import importlib
import sys

import typer

HELP = "A durable execution coordinator for AI coding agents, on Temporal."

# name -> (module, attribute), in the order `coord --help` lists them.
GROUPS: dict[str, tuple[str, str]] = {
    "server": ("cli.server", "server_app"),
    "worker": ("cli.worker", "worker_app"),
}
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("cli.validate", "validate_command"),
    "run": ("cli.run", "run_command"),
    "status": ("cli.inspect", "status_command"),
    "watch": ("cli.inspect", "watch_command"),
    "list": ("cli.inspect", "list_command"),
    "report": ("cli.inspect", "report_command"),
    "cancel": ("cli.control", "cancel_command"),
    "approve": ("cli.control", "approve_command"),
    "reject": ("cli.control", "reject_command"),
    "resolve": ("cli.control", "resolve_command"),
}


def build(command: str | None = None) -> typer.Typer:
    """The Typer app with `command` only, or with every command when it names none of them."""
    cli = typer.Typer(
        name="coord",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    every = command not in GROUPS and command not in COMMANDS
    for name, (module, attribute) in GROUPS.items():
        if every or name == command:
            cli.add_typer(getattr(importlib.import_module(module), attribute), name=name)
    for name, (module, attribute) in COMMANDS.items():
        if every or name == command:
            cli.command(name)(getattr(importlib.import_module(module), attribute))
    if not every:
        # With one command registered Typer would make it the whole program: keep the group.
        @cli.callback()
        def _group() -> None:
            pass

    return cli


def requested_command(argv: list[str]) -> str | None:
    """The command named on the command line (the first word not an option)."""
    return next((word for word in argv if not word.startswith("-")), None)


def app() -> None:
    """The `coord` console script."""
    build(requested_command(sys.argv[1:]))()


if __name__ == "__main__":
    app()
