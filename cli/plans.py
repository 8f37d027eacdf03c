"""Finding the plan `coord validate` and `coord run` are given: a file or a folder, the tag of
a Taskmaster file, and the repository to work on when the plan names none (the git
repository the plan is in)."""

from __future__ import annotations

from pathlib import Path

import typer

from coordinator.validation import ValidationResult, validate_plan_file

TagOption = typer.Option(
    None,
    "--tag",
    help="Taskmaster: the tag whose tasks to run (default: the current tag, else master).",
)


def git_repository(start: Path) -> Path | None:
    """The git repository holding `start` (its work tree's top folder), or None."""
    here = start.expanduser().absolute()
    for folder in (here, *here.parents) if here.is_dir() else here.parents:
        if (folder / ".git").exists():
            return folder
    return None


def validate_input(plan: Path, *, repo: Path | None, tag: str | None) -> ValidationResult:
    """Validate the plan given on the command line: without --repo, a plan that names no
    repository works on the git repository it is in (else the current folder's)."""
    override = repo.expanduser().absolute() if repo is not None else None
    default = None
    if override is None:
        default = git_repository(plan) or git_repository(Path.cwd())
    return validate_plan_file(
        plan, repository_override=override, repository_default=default, tag=tag
    )


__all__ = ["TagOption", "git_repository", "validate_input"]
