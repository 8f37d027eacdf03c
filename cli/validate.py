"""`coord validate PLAN`: check a plan without running anything."""

from __future__ import annotations

from pathlib import Path

import typer

from activities.claude_code.checks import missing_requirements
from cli.exit_codes import ExitCode
from cli.plans import TagOption, validate_input
from coordinator.validation import format_problems, format_summary


def validate_command(
    plan: Path = typer.Argument(
        ...,
        help="The plan: a YAML or JSON plan, a Markdown plan (a breakdown, a spec-kit, Kiro or "
        "heading-style tasks.md), a Taskmaster tasks.json, or a folder holding one (see "
        "`coord run`).",
    ),
    repo: Path | None = typer.Option(
        None, "--repo", help="Use this repository instead of the plan's."
    ),
    tag: str | None = TagOption,
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Check a plan: every problem at once, each with its file and line; then how it was
    read, its dependencies and where each came from, and the schedule. A plan whose tasks
    are all done is valid: there is nothing left to do."""
    result = validate_input(plan, repo=repo, tag=tag)
    if json_output:
        typer.echo(result.model_dump_json(indent=2))
    else:
        if result.ok:
            typer.echo(format_summary(result))
        if result.problems:
            typer.echo(format_problems(result), err=True)
        if problem := missing_requirements(result.claude_code_callers, worker=False):
            typer.echo(f"warning: {problem}", err=True)  # the worker checks again, before any work
    if not result.ok:
        raise typer.Exit(int(ExitCode.INVALID))
