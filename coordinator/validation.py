"""Validate a plan: every problem at once, each with its location.

The pydantic models in `coordinator.plan` check the shape of each field; this module turns
their errors into located `Problem`s and adds the cross-field rules (dependencies, cycles,
specialists, file ownership, paths). The cross-field rules also run on the raw task data
when the plan does not parse, so a cycle and a typo in a field name are reported together.
"""

from __future__ import annotations

import difflib
import posixpath
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from coordinator.breakdown import ParsedBreakdown, parse_breakdown
from coordinator.dag import (
    CycleError,
    TaskGraph,
    TaskSpec,
    find_cycles,
    layer_order,
    resolve_dependencies,
)
from coordinator.environment import (
    CONTEXT_BY_CONVENTION,
    PLAN_FILE_NAMES,
    context_problem,
    env_name_problem,
    env_value_warning,
    status_path_problem,
)
from coordinator.loader import (
    LineMap,
    LoadedPlan,
    PathKey,
    format_path,
    line_for,
    load_plan_file,
)
from coordinator.plan import (
    ENV_NAME_PATTERN,
    WEBHOOK_URL_PATTERN,
    Gate,
    Plan,
    is_clone_url,
    local_path,
    plan_folder,
)
from coordinator.specialists import SpecialistRegistry, load_registry

Severity = Literal["error", "warning"]

_TASK_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
_GITHUB_REPO_PATTERN = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"
# "path:12: message" or "path: message", as the specialist registry reports them.
_LOCATED = re.compile(r"^(?P<file>.*?):(?P<line>\d+): (?P<message>.*)$", re.DOTALL)
_FILE_ONLY = re.compile(r"^(?P<file>.*?): (?P<message>.*)$", re.DOTALL)


class Problem(BaseModel):
    severity: Severity
    message: str
    path: str  # like "tasks[3].depends_on[0]", "" for the whole file
    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class LayerSummary(BaseModel):
    name: str
    tasks: list[str]


class PlanSummary(BaseModel):
    task_count: int
    max_parallel: int
    layers: list[LayerSummary]
    # Steps of a simulated run where each task takes one unit of time and at most
    # `max_parallel` run at once: the tasks of a wave run together.
    waves: list[list[str]]
    critical_path: list[str]
    critical_path_length: int


class ValidationResult(BaseModel):
    # The parsed plan, when it parsed, even if other rules failed: check `ok` before using it.
    plan: Plan | None
    # The file the plan was read from (for a folder: the plan file found in it).
    plan_file: str | None = None
    problems: list[Problem]
    routes: dict[str, str]  # task id -> specialist name (named in the plan or routed)
    summary: PlanSummary | None  # only when there are no errors

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors


# --- entry points ----------------------------------------------------------------------------


def validate_plan_file(
    path: Path,
    *,
    repository_override: Path | None = None,
    registry: SpecialistRegistry | None = None,
) -> ValidationResult:
    """Read and validate a plan file (YAML, JSON, or a Markdown breakdown). Relative paths in
    the plan are relative to its folder; `repository_override` replaces the plan's
    `repository` (relative to the current folder).

    `path` may be a folder holding the plan (`plan.yaml`, `plan.yml`, `plan.json` or
    `breakdown.md`): the documents beside it named by convention (`goal.md`,
    `requirements.md`, `research.md`, `plan.md`) are then added to its `context`."""
    by_convention: list[Path] = []
    if path.is_dir():
        found = find_plan_file(path)
        if isinstance(found, str):
            problem = Problem(severity="error", message=found, path="", file=str(path))
            return ValidationResult(plan=None, problems=[problem], routes={}, summary=None)
        path = found
        by_convention = [path.absolute().parent / name for name in CONTEXT_BY_CONVENTION]
        by_convention = [doc for doc in by_convention if doc.exists()]
    result = validate_loaded(
        load_plan_file(path),
        base_dir=plan_folder(path),
        repository_override=repository_override,
        registry=registry,
        context_by_convention=by_convention,
    )
    result.plan_file = str(path)
    return result


def validate_breakdown(
    text: str,
    *,
    source: str,
    base_dir: Path,
    defaults: Mapping[str, Any] | None = None,
    repository_override: Path | None = None,
    registry: SpecialistRegistry | None = None,
) -> tuple[ParsedBreakdown, ValidationResult]:
    """Parse and validate a Markdown breakdown that is not a file (e.g. a GitHub issue's
    body). `defaults` fill settings its YAML block leaves out (repository, handoff, ...).
    Problems are located at lines of `text`, reported as `source:line`."""
    parsed = parse_breakdown(text, source, defaults=defaults)
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
    registry: SpecialistRegistry | None = None,
    context_by_convention: list[Path] | None = None,
) -> ValidationResult:
    """Validate what a loader read, with its own problems reported alongside the rules'."""
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
        return ValidationResult(plan=None, problems=problems, routes={}, summary=None)
    result = validate_plan_data(
        loaded.data,
        source=loaded.source,
        lines=loaded.lines,
        base_dir=base_dir,
        repository_override=repository_override,
        registry=registry,
        no_tasks_hint=loaded.no_tasks_hint,
        context_by_convention=context_by_convention,
    )
    if problems:
        result.problems = _sorted(problems + result.problems, loaded.source)
        if any(p.severity == "error" for p in problems):
            result.summary = None
    return result


def find_plan_file(folder: Path) -> Path | str:
    """The plan in `folder`, or why there is none to pick."""
    found = [folder / name for name in PLAN_FILE_NAMES if (folder / name).is_file()]
    data_plans = [f for f in found if f.suffix != ".md"]
    if len(data_plans) > 1:
        names = " and ".join(f.name for f in data_plans)
        return f"the folder holds {names}: name the plan file to run"
    if found:
        return data_plans[0] if data_plans else found[0]
    return f"no plan in this folder: expected one of {', '.join(PLAN_FILE_NAMES)}"


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
    checker = _Checker(source, lines, no_tasks_hint)
    if not isinstance(data, dict):
        checker.error((), "the plan must be a mapping of settings (name:, repository:, tasks:)")
        return checker.result(None, {}, None)
    if repository_override is not None and "repository" not in data:
        # A plan that names no repository (a breakdown an agent wrote often does not) runs
        # on the one given with --repo.
        data = {**data, "repository": str(repository_override.expanduser().absolute())}
    plan: Plan | None = None
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        checker.pydantic_errors(exc)
    view = _view_of_plan(plan) if plan is not None else _view_of_data(data)
    for doc in context_by_convention or []:
        listed = {(base_dir / entry).resolve() for _, entry in view.context}
        if doc.resolve() not in listed:
            entry = str(doc.relative_to(base_dir)) if doc.is_relative_to(base_dir) else str(doc)
            view.conventional.append(entry)
            if plan is not None:
                plan.context.append(entry)
    return _check(checker, view, plan, base_dir, repository_override, registry)


def validate_plan(
    plan: Plan,
    *,
    base_dir: Path,
    source: str = "<plan>",
    repository_override: Path | None = None,
    registry: SpecialistRegistry | None = None,
) -> ValidationResult:
    """Re-validate an already parsed plan (no line numbers then)."""
    checker = _Checker(source, {})
    return _check(checker, _view_of_plan(plan), plan, base_dir, repository_override, registry)


# --- output ----------------------------------------------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def format_problems(result: ValidationResult) -> str:
    """One line per problem ("error: plan.yaml:12: tasks[3].id: ..."), then a count."""
    if not result.problems:
        return ""
    lines = [f"{p.severity}: {p}" for p in result.problems]
    lines.append(
        f"{_plural(len(result.errors), 'error')}, {_plural(len(result.warnings), 'warning')}"
    )
    return "\n".join(lines)


def format_summary(result: ValidationResult) -> str:
    summary = result.summary
    if summary is None or result.plan is None:
        return "the plan is not valid" if not result.ok else ""

    def label(task_id: str) -> str:
        route = result.routes.get(task_id)
        return f"{task_id} ({route})" if route else task_id

    out = [
        f"plan '{result.plan.name}' is valid: {_plural(summary.task_count, 'task')}, "
        f"at most {summary.max_parallel} at a time"
    ]
    plan = result.plan
    if plan.setup:
        where = "the workspace" + (" and every new worktree" if plan.setup_per_worktree else "")
        out.append(f"setup ({where}): {', '.join(c.name for c in plan.setup)}")
    if plan.context:
        out.append(f"context documents: {', '.join(plan.context)}")
    if summary.layers:
        out.append("layers:")
        out += [f"  {layer.name}: {', '.join(layer.tasks)}" for layer in summary.layers]
    out.append(f"schedule ({_plural(len(summary.waves), 'wave')}; a wave's tasks run together):")
    width = len(str(len(summary.waves)))
    out += [
        f"  {i:>{width}}. {', '.join(label(t) for t in wave)}"
        for i, wave in enumerate(summary.waves, 1)
    ]
    out.append(
        f"critical path: {_plural(summary.critical_path_length, 'task')} "
        f"({' then '.join(summary.critical_path)})"
    )
    return "\n".join(out)


# --- problems --------------------------------------------------------------------------------


def _sorted(problems: list[Problem], source: str) -> list[Problem]:
    # File order for the plan's own problems (whole-file ones first); problems found in other
    # files (specialist definitions) after them. Stable, so discovery order breaks ties.
    return sorted(problems, key=lambda p: (p.file != source, p.line or 0))


class _Checker:
    """Collects problems for one plan source."""

    def __init__(self, source: str, lines: LineMap, no_tasks_hint: str = "") -> None:
        self.source = source
        self.lines = lines
        self.no_tasks_hint = no_tasks_hint
        self.problems: list[Problem] = []
        self._seen: set[tuple[str, str, str]] = set()

    def line(self, path: PathKey) -> int | None:
        # Whole-plan problems (e.g. about --repo) have no line of their own.
        return line_for(self.lines, path) if path else None

    def where(self, path: PathKey) -> str:
        """Points from one problem at another place: "tasks[0], line 3"."""
        line = self.lines.get(path)
        return f"{format_path(path)}, line {line}" if line is not None else format_path(path)

    def add(self, severity: Severity, path: PathKey, message: str) -> None:
        problem = Problem(
            severity=severity,
            message=message,
            path=format_path(path),
            file=self.source,
            line=self.line(path),
        )
        key = (severity, problem.path, message)
        if key not in self._seen:  # one pydantic error can echo a rule's finding
            self._seen.add(key)
            self.problems.append(problem)

    def error(self, path: PathKey, message: str) -> None:
        self.add("error", path, message)

    def warning(self, path: PathKey, message: str) -> None:
        self.add("warning", path, message)

    def elsewhere(self, severity: Severity, text: str) -> None:
        """A problem reported as "file:line: message" by another loader."""
        file, line, message = self.source, None, text
        if match := _LOCATED.match(text):
            file, line, message = match["file"], int(match["line"]), match["message"]
        elif match := _FILE_ONLY.match(text):
            file, message = match["file"], match["message"]
        self.problems.append(
            Problem(severity=severity, message=message, path="", file=file, line=line)
        )

    def pydantic_errors(self, exc: ValidationError) -> None:
        for err in exc.errors(include_url=False):
            loc: PathKey = tuple(err["loc"])
            self.error(loc, _pydantic_message(err, loc))

    def result(
        self, plan: Plan | None, routes: dict[str, str], summary: PlanSummary | None
    ) -> ValidationResult:
        problems = _sorted(self.problems, self.source)
        has_errors = any(p.severity == "error" for p in problems)
        return ValidationResult(
            plan=plan,
            problems=problems,
            routes=routes,
            summary=None if has_errors else summary,
        )


# --- pydantic errors in words ----------------------------------------------------------------


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _strip_type(annotation: Any) -> Any:
    """Peel `Annotated[...]` and `X | None` down to X."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or origin is types.UnionType:
            options = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _model_at(loc: PathKey) -> type[BaseModel] | None:
    """The plan model that holds the field at `loc`, e.g. Task for ("tasks", 3, "x")."""
    current: Any = Plan
    for part in loc[:-1]:
        current = _strip_type(current)
        if isinstance(part, int):
            if get_origin(current) is not list:
                return None
            current = get_args(current)[0]
        elif isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(part)
            if info is None:
                return None
            current = info.annotation
        else:
            return None
    current = _strip_type(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _pydantic_message(err: Any, loc: PathKey) -> str:
    kind: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    value = err.get("input")
    got = f", got {_describe(value)}"
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else ""
        model = _model_at(loc)
        known = list(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(name, known, n=1)
        if close:
            return f"unknown field '{name}' (did you mean '{close[0]}'?)"
        if known:
            return f"unknown field '{name}'; known fields: {', '.join(known)}"
        return f"unknown field '{name}'"
    if kind == "string_type":
        quote = " (put it in quotes)" if isinstance(value, int | float | bool) else ""
        return f"must be a string{got}{quote}"
    if kind == "string_too_short":
        if loc and loc[-1] == "run" and _model_at(loc) is Gate:
            return "the gate's command (`run`) must not be empty"
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters{got}"
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern")
        if pattern == _TASK_ID_PATTERN:
            return (
                "must be lowercase letters, digits, '.', '_' or '-', "
                f"starting with a letter or digit{got}"
            )
        if pattern == _GITHUB_REPO_PATTERN:
            return f"must look like 'owner/name'{got}"
        if pattern == WEBHOOK_URL_PATTERN:
            return f"must be an http:// or https:// URL{got}"
        if pattern == ENV_NAME_PATTERN:
            return f"must be an environment variable name{got}"
        return f"must match {pattern}{got}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be an integer{got}"
    if kind == "greater_than":
        if ctx.get("gt") == 0:
            return f"must be a positive integer{got}"
        return f"must be greater than {ctx.get('gt')}{got}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}{got}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}{got}"
    if kind == "less_than":
        return f"must be less than {ctx.get('lt')}{got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false{got}"
    if kind == "list_type":
        return f"must be a list{got}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"must be a mapping (key: value){got}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}{got}"
    if kind == "value_error":
        return str(ctx.get("error", err.get("msg", kind)))  # our validators word it fully
    message = str(err.get("msg", kind))
    return message[:1].lower() + message[1:]


# --- a view of the plan that also works on data that did not parse --------------------------


@dataclass
class _TaskView:
    index: int
    id: str
    title: str | None = None
    prompt: str = ""
    specialist: str | None = None
    # False when `specialist` is set but unusable (pydantic reports it): do not route then.
    routable: bool = True
    layer: str | None = None
    depends_on: list[tuple[int, str]] | None = None  # (position in the list, id)
    files: list[tuple[int, str]] = field(default_factory=list)

    def spec(self) -> TaskSpec:
        deps = None if self.depends_on is None else [d for _, d in self.depends_on]
        return TaskSpec(self.id, self.layer, deps)


@dataclass
class _PlanView:
    tasks: list[_TaskView]
    # How many entries `tasks` has, usable or not; None when it is not a list.
    tasks_given: int | None
    repository: str | None = None
    specialists_dir: str | None = None
    strict_files: bool = False
    # Plan-level specialists: the fixer and the reviewer, when named.
    roles: list[tuple[str, str]] = field(default_factory=list)
    setup: list[tuple[int, str]] = field(default_factory=list)  # (position, name)
    setup_per_worktree: bool = False
    env: dict[str, object] = field(default_factory=dict)
    env_from: list[tuple[int, str]] = field(default_factory=list)
    context: list[tuple[int, str]] = field(default_factory=list)
    # Documents beside the plan picked up by their names (`coord run FOLDER`).
    conventional: list[str] = field(default_factory=list)
    status_file: str | None = None


def _view_of_plan(plan: Plan) -> _PlanView:
    tasks = [
        _TaskView(
            index=i,
            id=t.id,
            title=t.title,
            prompt=t.prompt,
            specialist=t.specialist,
            layer=t.layer,
            depends_on=None if t.depends_on is None else list(enumerate(t.depends_on)),
            files=list(enumerate(t.files)),
        )
        for i, t in enumerate(plan.tasks)
    ]
    # Only roles the plan names: the default reviewer may be absent (the review is skipped).
    roles = [
        (key, name)
        for key, name in (("fixer", plan.fixer), ("reviewer", plan.reviewer))
        if name and key in plan.model_fields_set
    ]
    return _PlanView(
        tasks,
        len(tasks),
        plan.repository,
        plan.specialists_dir,
        plan.strict_files,
        roles,
        setup=[(i, s.name) for i, s in enumerate(plan.setup)],
        setup_per_worktree=plan.setup_per_worktree,
        env=dict(plan.env),
        env_from=list(enumerate(plan.env_from)),
        context=list(enumerate(plan.context)),
        status_file=plan.status_file if isinstance(plan.status_file, str) else None,
    )


def _listed(value: object) -> list[tuple[int, str]]:
    """The usable text entries of a list that may not have parsed."""
    if not isinstance(value, list):
        return []
    return [(i, text) for i, item in enumerate(value) if (text := _text(item))]


def _text(value: object) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _view_of_data(data: Mapping[str, Any]) -> _PlanView:
    """What can be read from data that failed to parse; unusable values are left out
    (pydantic has reported them)."""
    raw_tasks = data.get("tasks")
    tasks: list[_TaskView] = []
    for i, raw in enumerate(raw_tasks if isinstance(raw_tasks, list) else []):
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            continue
        layer = raw.get("layer")
        # `layer: 2` is a type error, but still clearly names a layer for the dependency rule.
        if isinstance(layer, int) and not isinstance(layer, bool):
            layer = str(layer)
        raw_deps = raw.get("depends_on")
        depends_on = None
        if isinstance(raw_deps, list):
            depends_on = [(j, d) for j, d in enumerate(raw_deps) if isinstance(d, str)]
        raw_files = raw.get("files")
        files = []
        if isinstance(raw_files, list):
            files = [(j, f.strip()) for j, f in enumerate(raw_files) if _text(f)]
        specialist = raw.get("specialist")
        tasks.append(
            _TaskView(
                index=i,
                id=raw["id"],
                title=_text(raw.get("title")),
                prompt=_text(raw.get("prompt")) or "",
                specialist=_text(specialist),
                routable=specialist is None,
                layer=_text(layer),
                depends_on=depends_on,
                files=files,
            )
        )
    strict = data.get("strict_files")
    raw_setup = data.get("setup")
    setup = [
        (i, name)
        for i, item in enumerate(raw_setup if isinstance(raw_setup, list) else [])
        if isinstance(item, dict) and (name := _text(item.get("name")))
    ]
    env = data.get("env")
    status_file = data.get("status_file")
    return _PlanView(
        tasks,
        len(raw_tasks) if isinstance(raw_tasks, list) else 0 if raw_tasks is None else None,
        _text(data.get("repository")),
        _text(data.get("specialists_dir")),
        strict if isinstance(strict, bool) else False,
        [(key, name) for key in ("fixer", "reviewer") if (name := _text(data.get(key)))],
        setup=setup,
        setup_per_worktree=data.get("setup_per_worktree") is True,
        env={str(k): v for k, v in env.items()} if isinstance(env, dict) else {},
        env_from=_listed(data.get("env_from")),
        context=_listed(data.get("context")),
        status_file=_text(status_file),
    )


# --- the rules -------------------------------------------------------------------------------


def _check(
    checker: _Checker,
    view: _PlanView,
    plan: Plan | None,
    base_dir: Path,
    repository_override: Path | None,
    registry: SpecialistRegistry | None,
) -> ValidationResult:
    graph = _check_dependencies(checker, view)
    repository = _check_repository(checker, view, base_dir, repository_override)
    specialists_dir = _check_specialists_dir(checker, view, base_dir)
    if registry is None:
        try:
            registry = load_registry(specialists_dir=specialists_dir, repository=repository)
        except OSError as exc:  # e.g. an unreadable folder; files are reported one by one
            checker.error((), f"cannot load specialists: {exc}")
            registry = SpecialistRegistry()
    for warning in registry.warnings:
        checker.elsewhere("warning", warning)
    # A broken definition only matters to tasks that use it ("unknown specialist"), so it
    # must not block plans that never name it.
    for error in registry.errors:
        checker.elsewhere("warning", f"{error} (definition skipped)")
    # A repository named by URL may bring its own .claude/agents: what it lacks here is only
    # a warning, and the setup phase checks again on the clone.
    remote = (
        repository_override is None
        and view.repository is not None
        and is_clone_url(view.repository)
    )
    routes = _check_specialists(checker, view, registry, missing="warning" if remote else "error")
    if graph is not None:
        _check_files(checker, view, graph)
    _check_environment(checker, view)
    _check_context(checker, view, base_dir, repository, remote=remote)
    summary = None
    if plan is not None and graph is not None:
        summary = _summary(plan, graph)
    return checker.result(plan, routes, summary)


def _check_dependencies(checker: _Checker, view: _PlanView) -> TaskGraph | None:
    """Duplicate ids, unknown and self dependencies, cycles. The graph, when acyclic."""
    if not view.tasks:
        if view.tasks_given == 0:
            checker.error(("tasks",), f"the plan has no tasks{checker.no_tasks_hint}")
        return None
    first: dict[str, _TaskView] = {}
    for task in view.tasks:
        if task.id in first:
            other = ("tasks", first[task.id].index)
            checker.error(
                ("tasks", task.index, "id"),
                f"duplicate task id '{task.id}' (first used by {checker.where(other)})",
            )
        else:
            first[task.id] = task
    known = list(first)
    for task in view.tasks:
        seen: set[str] = set()
        for pos, dep in task.depends_on or []:
            dep_path: PathKey = ("tasks", task.index, "depends_on", pos)
            if dep in seen:
                checker.warning(dep_path, f"'{dep}' is listed twice")
                continue
            seen.add(dep)
            if dep == task.id:
                checker.error(dep_path, f"task '{task.id}' depends on itself")
            elif dep not in first:
                close = difflib.get_close_matches(dep, known, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                checker.error(dep_path, f"unknown task '{dep}'{hint}")

    unique = list(first.values())
    deps = {
        task_id: tuple(d for d in task_deps if d in first and d != task_id)
        for task_id, task_deps in resolve_dependencies(t.spec() for t in unique).items()
    }
    cycles = [cycle for cycle in find_cycles(deps) if len(cycle) > 2]
    for cycle in cycles:
        task = first[cycle[0]]
        # An implicit dependency comes from the layer rule: point at the layer then.
        where: PathKey = ("tasks", task.index, "layer")
        for pos, dep in task.depends_on or []:
            if dep == cycle[1]:
                where = ("tasks", task.index, "depends_on", pos)
                break
        shown = " -> ".join(cycle)
        checker.error(where, f"dependency cycle: {shown} (each task depends on the next)")
    if cycles:
        return None
    try:
        return TaskGraph(deps)
    except CycleError:  # pragma: no cover - find_cycles found none
        return None


def _check_repository(
    checker: _Checker, view: _PlanView, base_dir: Path, override: Path | None
) -> Path | None:
    """The local repository folder, when there is one and it exists."""
    if override is not None:
        local = override.expanduser().absolute()
        if not local.is_dir():
            what = "is not a folder" if local.exists() else "does not exist"
            checker.error((), f"repository override '{override}' {what}")
            return None
        return local
    if view.repository is None or is_clone_url(view.repository):  # clone tells
        return None
    local = local_path(view.repository, base_dir)
    if not local.is_dir():
        what = "is not a folder" if local.exists() else "does not exist"
        checker.error(
            ("repository",),
            f"repository '{view.repository}' {what} (looked at {local}); give a local "
            "folder or a URL (https://, ssh://, git@host:, file://)",
        )
        return None
    return local


def _check_specialists_dir(checker: _Checker, view: _PlanView, base_dir: Path) -> Path | None:
    if view.specialists_dir is None:
        return None
    local = local_path(view.specialists_dir, base_dir)
    if not local.is_dir():
        what = "is not a folder" if local.exists() else "does not exist"
        checker.error(
            ("specialists_dir",), f"specialists_dir '{view.specialists_dir}' {what} ({local})"
        )
        return None
    return local


def _check_specialists(
    checker: _Checker, view: _PlanView, registry: SpecialistRegistry, *, missing: Severity
) -> dict[str, str]:
    routes: dict[str, str] = {}
    names = registry.names()
    listing = ", ".join(names) if names else "none"
    for key, name in view.roles:
        if registry.get(name) is None:
            close = registry.close_names(name)
            hint = (
                f"did you mean {' or '.join(map(repr, close))}?" if close else f"known: {listing}"
            )
            checker.add(
                missing,
                (key,),
                f"unknown specialist '{name}' ({hint})"
                + (_AFTER_CLONE if missing == "warning" else ""),
            )
    for task in view.tasks:
        if task.specialist is not None:
            if registry.get(task.specialist) is None:
                close = registry.close_names(task.specialist)
                hint = (
                    f"did you mean {' or '.join(repr(n) for n in close)}?"
                    if close
                    else f"known specialists: {listing}"
                )
                if registry.errors:
                    hint += "; some definitions could not be loaded, see the warnings"
                checker.add(
                    missing,
                    ("tasks", task.index, "specialist"),
                    f"unknown specialist '{task.specialist}' ({hint})"
                    + (_AFTER_CLONE if missing == "warning" else ""),
                )
            else:
                routes.setdefault(task.id, task.specialist)
        elif task.routable and task.title is not None:
            specialist = registry.route(task.title, task.prompt)
            if specialist is None:
                checker.add(
                    missing,
                    ("tasks", task.index),
                    f"no specialist matches task '{task.id}'; set `specialist:` (known: {listing})"
                    + (_AFTER_CLONE if missing == "warning" else ""),
                )
            else:
                routes.setdefault(task.id, specialist.name)
    return routes


_AFTER_CLONE = "; checked again on the clone, whose .claude/agents/ may define it"


def _normalize_file(name: str) -> str:
    return posixpath.normpath(name.replace("\\", "/"))


def _check_files(checker: _Checker, view: _PlanView, graph: TaskGraph) -> None:
    """Two tasks that may run at the same time must not own the same file."""
    severity: Severity = "error" if view.strict_files else "warning"
    owners: dict[str, list[str]] = {}
    seen_ids: set[str] = set()
    for task in view.tasks:
        if task.id in seen_ids:  # a duplicate id: already an error, and not in the graph
            continue
        seen_ids.add(task.id)
        mine: set[str] = set()
        for pos, name in task.files:
            key = _normalize_file(name)
            if key in mine:
                continue
            mine.add(key)
            earlier = owners.setdefault(key, [])
            clash = [o for o in earlier if graph.may_run_in_parallel(o, task.id)]
            earlier.append(task.id)
            if not clash:
                continue
            who = ", ".join(f"'{o}'" for o in clash[:5])
            if len(clash) > 5:
                who += f" and {len(clash) - 5} more"
            tasks_word = "task" if len(clash) == 1 else "tasks"
            fix = "" if view.strict_files else " (strict_files: true makes this an error)"
            checker.add(
                severity,
                ("tasks", task.index, "files", pos),
                f"file '{name}' is also owned by {tasks_word} {who}, which may run at the "
                f"same time as '{task.id}'; make one depend on the other{fix}",
            )


def _check_environment(checker: _Checker, view: _PlanView) -> None:
    """Setup command names, variables and the status file path."""
    first: dict[str, int] = {}
    for pos, name in view.setup:
        if name in first:
            checker.error(
                ("setup", pos, "name"),
                f"duplicate setup command name '{name}' (first used by "
                f"{checker.where(('setup', first[name]))})",
            )
        first.setdefault(name, pos)
    if view.setup_per_worktree and not view.setup:
        checker.warning(("setup_per_worktree",), "setup_per_worktree has no effect without setup")
    for name, value in view.env.items():
        if problem := env_name_problem(name, passed_through=False):
            checker.error(("env", name), problem)
        elif isinstance(value, str) and (warning := env_value_warning(value)):
            checker.warning(("env", name), warning)
    for pos, name in view.env_from:
        if problem := env_name_problem(name, passed_through=True):
            checker.error(("env_from", pos), problem)
        elif name in view.env:
            checker.error(("env_from", pos), f"'{name}' is set by env as well: keep one of the two")
    if view.status_file is not None and (problem := status_path_problem(view.status_file)):
        checker.error(("status_file",), problem)


def _check_context(
    checker: _Checker, view: _PlanView, base_dir: Path, repository: Path | None, *, remote: bool
) -> None:
    """Every context document exists and says something: a specialist told to read the
    research must not find nothing there."""
    seen: dict[Path, int] = {}
    for pos, entry in view.context:
        found, problem = context_problem(entry, base_dir, repository)
        if found is None:
            missing = "not found" in problem
            if remote and missing:
                checker.warning(
                    ("context", pos), problem + "; checked again on the clone of the repository"
                )
            else:
                checker.error(("context", pos), problem)
            continue
        key = found.resolve()
        if key in seen:
            checker.warning(("context", pos), f"'{entry}' is listed twice")
        seen.setdefault(key, pos)
    for entry in view.conventional:
        found, problem = context_problem(entry, base_dir, None)
        if found is None:
            checker.problems.append(
                Problem(
                    severity="error",
                    message=problem + " (a context document by its name, beside the plan)",
                    path="",
                    file=str(base_dir / entry),
                )
            )


def _summary(plan: Plan, graph: TaskGraph) -> PlanSummary:
    layers = [LayerSummary(name=name, tasks=ids) for name, ids in layer_order(plan.tasks).items()]
    critical = graph.critical_path()
    return PlanSummary(
        task_count=len(plan.tasks),
        max_parallel=plan.max_parallel,
        layers=layers,
        waves=graph.schedule(plan.max_parallel),
        critical_path=critical,
        critical_path_length=len(critical),
    )


__all__ = [
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
