"""`coord validate PLAN`: check a plan without running anything."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.exit_codes import ExitCode
from coordinator.validation import format_problems, format_summary, validate_plan_file


def validate_command(
    plan: Path = typer.Argument(
        ...,
        help="The plan file (YAML, JSON or a Markdown breakdown .md), or a folder holding "
        "one (see `coord run`).",
    ),
    repo: Path | None = typer.Option(
        None, "--repo", help="Use this repository instead of the plan's."
    ),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Check a plan: every problem at once, each with its file and line; then the schedule."""
    override = repo.expanduser().absolute() if repo is not None else None
    result = validate_plan_file(plan, repository_override=override)
    if json_output:
        typer.echo(result.model_dump_json(indent=2))
    else:
        if result.ok:
            typer.echo(format_summary(result))
        if result.problems:
            typer.echo(format_problems(result), err=True)
    if not result.ok:
        raise typer.Exit(int(ExitCode.INVALID))
