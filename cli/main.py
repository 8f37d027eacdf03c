"""The `coord` command: one entry point for the server, the worker and executions."""

from __future__ import annotations

import typer

from cli.control import approve_command, cancel_command, reject_command, resolve_command
from cli.inspect import list_command, report_command, status_command, watch_command
from cli.run import run_command
from cli.server import server_app
from cli.validate import validate_command
from cli.worker import worker_app

app = typer.Typer(
    name="coord",
    help="A durable execution coordinator for AI coding agents, on Temporal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(server_app, name="server")
app.add_typer(worker_app, name="worker")
app.command("validate")(validate_command)
app.command("run")(run_command)
app.command("status")(status_command)
app.command("watch")(watch_command)
app.command("list")(list_command)
app.command("report")(report_command)
app.command("cancel")(cancel_command)
app.command("approve")(approve_command)
app.command("reject")(reject_command)
app.command("resolve")(resolve_command)

if __name__ == "__main__":
    app()
