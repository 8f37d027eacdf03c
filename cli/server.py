"""`coord server`: run the embedded Temporal dev server (`coord server`, `--detach`, `stop`,
`status`). Settings come from temporal-dev.yaml; flags override them for one run."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer

from cli import devserver
from cli.config_file import load_config
from cli.devserver import DevServerError, ServerHandle, ServerOverrides
from coordinator.settings import ConfigError, DevServerConfig

server_app = typer.Typer(
    help="Run the embedded Temporal dev server (settings in temporal-dev.yaml). "
    "With no subcommand: start it.",
    invoke_without_command=True,
    no_args_is_help=False,
)

CONFIG_HELP = (
    "temporal-dev.yaml to use (default: $COORD_CONFIG, else the nearest one up from here)."
)


def _config(ctx: typer.Context, path: Path | None) -> DevServerConfig:
    """Load the YAML given here, or to `coord server --config X` before the subcommand."""
    if path is None and isinstance(ctx.obj, dict):
        path = ctx.obj.get("server_config")
    try:
        return load_config(path)
    except ConfigError as exc:
        _fail(str(exc))


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _announce(handle: ServerHandle) -> None:
    if handle.already_running:
        typer.echo(f"Temporal dev server already running (pid {handle.pid}).")
    typer.echo(handle.summary())
    if handle.mismatch:
        typer.echo(
            "note: it runs with other settings than asked for: "
            + "; ".join(handle.mismatch)
            + ". Stop it first ('coord server stop') to change them."
        )
    if handle.detached:
        typer.echo(f"log {handle.log_file}; stop it with 'coord server stop'")
    elif handle.already_running:
        typer.echo(
            "It runs in another terminal: stop it there (Ctrl-C) or with 'coord server stop'."
        )
    else:
        typer.echo("Press Ctrl-C to stop it.")


@server_app.callback()
def server(
    ctx: typer.Context,
    detach: bool = typer.Option(
        False, "--detach", "-d", help="Run in the background (pid and log in server.state_dir)."
    ),
    port: int | None = typer.Option(
        None, "--port", "-p", min=1, max=65535, help="gRPC port (server.port)."
    ),
    ui_port: int | None = typer.Option(
        None, "--ui-port", min=1, max=65535, help="Web UI port (server.ui_port)."
    ),
    db_file: Path | None = typer.Option(
        None,
        "--db-file",
        dir_okay=False,
        help="SQLite file keeping executions (server.db_file).",
    ),
    ephemeral: bool = typer.Option(
        False, "--ephemeral", help="No db file: executions live in memory and vanish on stop."
    ),
    headless: bool | None = typer.Option(
        None, "--headless/--ui", help="Without/with the Web UI (server.headless)."
    ),
    namespace: str | None = typer.Option(
        None, "--namespace", "-n", help="Namespace to create (server.namespace)."
    ),
    config: Path | None = typer.Option(None, "--config", dir_okay=False, help=CONFIG_HELP),
) -> None:
    """Start the Temporal dev server and print its gRPC address and Web UI URL."""
    ctx.ensure_object(dict)["server_config"] = config
    if ctx.invoked_subcommand is not None:
        return
    overrides = ServerOverrides(
        port=port,
        ui_port=ui_port,
        db_file=db_file,
        ephemeral=ephemeral,
        headless=headless,
        namespace=namespace,
    )
    settings = _config(ctx, config)
    try:
        devserver.start(settings, detach=detach, overrides=overrides, announce=_announce)
    except DevServerError as exc:
        _fail(str(exc))


@server_app.command()
def stop(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", dir_okay=False, help=CONFIG_HELP),
) -> None:
    """Stop the dev server started by 'coord server' (nothing running is fine)."""
    settings = _config(ctx, config)
    running = devserver.running(settings)
    try:
        stopped = devserver.stop(settings)
    except DevServerError as exc:
        _fail(str(exc))
    if stopped and running is not None:
        typer.echo(f"Temporal dev server stopped (pid {running.pid}).")
    else:
        typer.echo(
            f"No Temporal dev server started by coord is running ({settings.server.state_dir})."
        )


@server_app.command()
def status(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", dir_okay=False, help=CONFIG_HELP),
) -> None:
    """Show whether the dev server runs and answers. Exit code 1 when it does not run."""
    settings = _config(ctx, config)
    state = devserver.status(settings)
    if state.handle is None:
        if state.answering:
            typer.echo(f"A Temporal server answers at {state.address}, but coord did not start it.")
        else:
            typer.echo(f"No Temporal dev server is running ({state.address}).")
        raise typer.Exit(1)
    handle = state.handle
    health = "answering" if state.answering else "NOT answering"
    typer.echo(f"Temporal dev server running (pid {handle.pid}), {health}.")
    typer.echo(handle.summary().replace(" ready:", ":"))
    if handle.log_file:
        typer.echo(f"log {handle.log_file}")
