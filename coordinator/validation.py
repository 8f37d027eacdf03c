"""Validate a plan: every problem at once, each with its location.

The pydantic models in `coordinator.plan` check the shape of each field; the readers
(`coordinator.readers`) turn any plan file into plan data with a line map;
`coordinator.validation_rules` adds the cross-field rules (dependencies, cycles,
specialists, file ownership, paths). The entry points are here; what they return is in
`coordinator.validation_models`, and how it reads in `coordinator.validation_summary`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from coordinator.loader import LineMap, LoadedPlan, format_path, read_plan_bytes
from coordinator.plan import Plan, plan_folder
from coordinator.readers import ParsedPlan, read_markdown, read_plan_text
from coordinator.readers.folders import (
    CONTEXT_BY_CONVENTION,
    CONTEXT_FOLDERS,
    PLAN_FILE_NAMES,
    choose_plan_file,
    current_tag,
    name_hint,
)
from coordinator.specialists import SpecialistRegistry
from coordinator.validation_models import (
    EdgeSummary,
    LayerSummary,
    PlanSummary,
    Problem,
    ValidationResult,
)
from coordinator.validation_rules import Checker, check, sorted_problems
from coordinator.validation_summary import format_problems, format_summary
from coordinator.validation_views import view_of_data, view_of_plan


def validate_plan_file(
    path: Path,
    *,
    repository_override: Path | None = None,
    repository_default: Path | None = None,
    registry: SpecialistRegistry | None = None,
    tag: str | None = None,
) -> ValidationResult:
    """Read and validate a plan file: YAML, JSON, a Markdown plan (a breakdown, a spec-kit,
    Kiro or heading-style tasks.md) or a Taskmaster tasks.json, recognised by content.
    Relative paths in the plan are relative to its folder; `repository_override` replaces
    the plan's `repository`, `repository_default` is used when the plan names none.

    `path` may be a folder holding the plan (`coordinator.readers.folders`): the documents
    beside it named by convention (`spec.md`, `research.md`, `contracts/` ...) are then
    added to its `context`."""
    by_convention: list[Path] = []
    if path.is_dir():
        found = _plan_in_folder(path)
        if isinstance(found, Problem):
            return ValidationResult(plan=None, problems=[found], routes={}, summary=None)
        path, by_convention, folder_tag = found
        tag = tag or folder_tag
    text = read_plan_bytes(path)
    hint = None
    if path.name in ("tasks.md", "tasks.json"):
        hint = name_hint(str(path.absolute().parent), path.name)
    loaded = (
        text
        if isinstance(text, LoadedPlan)
        else read_plan_text(text, str(path), name=path.name, tag=tag, name_hint=hint)
    )
    result = validate_loaded(
        loaded,
        base_dir=plan_folder(path),
        repository_override=repository_override,
        repository_default=repository_default,
        registry=registry,
        context_by_convention=by_convention,
    )
    result.plan_file = str(path)
    return result


def _plan_in_folder(folder: Path) -> tuple[Path, list[Path], str | None] | Problem:
    names = [name for name in PLAN_FILE_NAMES if (folder / name).is_file()]
    try:
        plan = folder / choose_plan_file(names)
    except ValueError as err:
        return Problem(severity="error", message=str(err), path="", file=str(folder))
    docs = [folder / name for name in CONTEXT_BY_CONVENTION if (folder / name).is_file()]
    for name in CONTEXT_FOLDERS:
        if (folder / name).is_dir():
            files = sorted(p for p in (folder / name).rglob("*") if p.is_file())
            docs += [p for p in files if p.stat().st_size > 0]
    state = folder / "state.json"
    tag = current_tag(state.read_text(errors="replace")) if state.is_file() else None
    return plan, docs, tag


def validate_breakdown(
    text: str,
    *,
    source: str,
    base_dir: Path,
    defaults: Mapping[str, Any] | None = None,
    repository_override: Path | None = None,
    registry: SpecialistRegistry | None = None,
) -> tuple[ParsedPlan, ValidationResult]:
    """Parse and validate a Markdown plan that is not a file (e.g. a GitHub issue's body).
    `defaults` fill settings its YAML block leaves out (repository, handoff, ...). Problems
    are located at lines of `text`, reported as `source:line`."""
    parsed = read_markdown(text, source, defaults=defaults)
    result = validate_loaded(
        parsed.to_loaded(),
        base_dir=base_dir,
        repository_override=repository_override,
        registry=registry,
    )
    return parsed, result


def validate_loaded(
    loaded: LoadedPlan,
    *,
    base_dir: Path,
    repository_override: Path | None = None,
    repository_default: Path | None = None,
    registry: SpecialistRegistry | None = None,
    context_by_convention: list[Path] | None = None,
) -> ValidationResult:
    """Validate what a reader read, with its own problems reported alongside the rules'."""
    problems = [
        Problem(
            severity=issue.severity,
            message=issue.message,
            path=format_path(issue.path),
            file=loaded.source,
            line=issue.line,
            column=issue.column,
        )
        for issue in loaded.issues
    ]
    if loaded.data is None:
        return ValidationResult(
            plan=None, problems=problems, routes={}, summary=None, reader=loaded.reader
        )
    checker = Checker(loaded.source, loaded.lines, loaded.no_tasks_hint)
    checker.nothing_to_do = loaded.nothing_to_do
    checker.soft_specialists = loaded.soft_specialists
    checker.edges = list(loaded.edges)
    checker.notes = list(loaded.notes)
    result = _validate(
        checker,
        loaded.data,
        base_dir=base_dir,
        repository_override=repository_override,
        repository_default=repository_default,
        registry=registry,
        context_by_convention=context_by_convention,
    )
    result.reader = loaded.reader
    if result.plan is not None and loaded.plan_source is not None:
        result.plan.source = loaded.plan_source
    if problems:
        result.problems = sorted_problems(problems + result.problems, loaded.source)
        if any(p.severity == "error" for p in problems):
            result.summary = None
    return result


def validate_plan_data(
    data: Any,
    *,
    source: str,
    lines: LineMap,
    base_dir: Path,
    repository_override: Path | None = None,
    registry: SpecialistRegistry | None = None,
    no_tasks_hint: str = "",
    context_by_convention: list[Path] | None = None,
) -> ValidationResult:
    """Validate plan data from any format; `lines` maps data paths to lines in `source`.

    `context_by_convention`: documents beside the plan that join its `context`."""
    return _validate(
        Checker(source, lines, no_tasks_hint),
        data,
        base_dir=base_dir,
        repository_override=repository_override,
        registry=registry,
        context_by_convention=context_by_convention,
    )


def _validate(
    checker: Checker,
    data: Any,
    *,
    base_dir: Path,
    repository_override: Path | None = None,
    repository_default: Path | None = None,
    registry: SpecialistRegistry | None = None,
    context_by_convention: list[Path] | None = None,
) -> ValidationResult:
    if not isinstance(data, dict):
        checker.error((), "the plan must be a mapping of settings (name:, repository:, tasks:)")
        return checker.result(None, {}, None)
    if "repository" not in data:
        # A plan that names no repository (a breakdown an agent wrote often does not) runs
        # on the one given with --repo, or else on the git repository it is in.
        if repository_override is not None:
            data = {**data, "repository": str(repository_override.expanduser().absolute())}
        elif repository_default is not None:
            data = {**data, "repository": str(repository_default)}
            checker.notes.append(
                f"the plan names no repository: using the git repository it is in, "
                f"{repository_default} (--repo PATH to choose another)"
            )
    plan: Plan | None = None
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        checker.pydantic_errors(exc)
    view = view_of_plan(plan) if plan is not None else view_of_data(data)
    for doc in context_by_convention or []:
        listed = {(base_dir / entry).resolve() for _, entry in view.context}
        if doc.resolve() not in listed:
            entry = str(doc.relative_to(base_dir)) if doc.is_relative_to(base_dir) else str(doc)
            view.conventional.append(entry)
            if plan is not None:
                plan.context.append(entry)
    return check(checker, view, plan, base_dir, repository_override, registry)


def validate_plan(
    plan: Plan,
    *,
    base_dir: Path,
    source: str = "<plan>",
    repository_override: Path | None = None,
    registry: SpecialistRegistry | None = None,
) -> ValidationResult:
    """Re-validate an already parsed plan (no line numbers then)."""
    checker = Checker(source, {})
    return check(checker, view_of_plan(plan), plan, base_dir, repository_override, registry)


__all__ = [
    "EdgeSummary",
    "LayerSummary",
    "PlanSummary",
    "Problem",
    "ValidationResult",
    "format_problems",
    "format_summary",
    "validate_breakdown",
    "validate_loaded",
    "validate_plan",
    "validate_plan_data",
    "validate_plan_file",
]
