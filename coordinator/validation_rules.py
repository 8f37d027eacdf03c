"""The rules a plan must follow beyond the shape of each field: dependencies and cycles,
specialists and routing, file ownership, paths, environment, context documents. They run on
the parsed plan, or on the raw data when it did not parse, so a cycle and a typo in a field
name are reported together."""

from __future__ import annotations

import difflib
import posixpath
import re
from pathlib import Path

from pydantic import ValidationError

from coordinator.dag import CycleError, TaskGraph, find_cycles, resolve_dependencies
from coordinator.environment import (
    context_problem,
    env_name_problem,
    env_value_warning,
    status_path_problem,
)
from coordinator.loader import Edge, LineMap, PathKey, format_path, line_for
from coordinator.plan import Plan, is_clone_url, local_path
from coordinator.specialists import Specialist, SpecialistRegistry, load_registry
from coordinator.validation_messages import pydantic_message
from coordinator.validation_models import PlanSummary, Problem, Severity, ValidationResult
from coordinator.validation_summary import summarize
from coordinator.validation_views import PlanView, TaskView

# "path:12: message" or "path: message", as the specialist registry reports them.
_LOCATED = re.compile(r"^(?P<file>.*?):(?P<line>\d+): (?P<message>.*)$", re.DOTALL)
_FILE_ONLY = re.compile(r"^(?P<file>.*?): (?P<message>.*)$", re.DOTALL)


def plan_tasks(plan: Plan | None) -> int:
    return len(plan.tasks) if plan is not None else 0


def sorted_problems(problems: list[Problem], source: str) -> list[Problem]:
    # File order for the plan's own problems (whole-file ones first); problems found in other
    # files (specialist definitions) after them. Stable, so discovery order breaks ties.
    return sorted(problems, key=lambda p: (p.file != source, p.line or 0))


class Checker:
    """Collects problems for one plan source."""

    def __init__(self, source: str, lines: LineMap, no_tasks_hint: str = "") -> None:
        self.source = source
        self.lines = lines
        self.no_tasks_hint = no_tasks_hint
        self.problems: list[Problem] = []
        self._seen: set[tuple[str, str, str]] = set()
        # What the plan's reader knew: tasks all done, specialist markers that may fall
        # back, where each dependency came from; and what the rules have to say.
        self.nothing_to_do = False
        self.soft_specialists: frozenset[str] = frozenset()
        self.edges: list[Edge] = []
        self.notes: list[str] = []
        self.fallen_back: list[int] = []  # task indexes whose marker named no specialist

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
            self.error(loc, pydantic_message(err, loc))

    def result(
        self, plan: Plan | None, routes: dict[str, str], summary: PlanSummary | None
    ) -> ValidationResult:
        problems = sorted_problems(self.problems, self.source)
        has_errors = any(p.severity == "error" for p in problems)
        return ValidationResult(
            plan=plan,
            problems=problems,
            routes=routes,
            summary=None if has_errors else summary,
            notes=list(self.notes),
            nothing_to_do=self.nothing_to_do and not plan_tasks(plan),
        )


# --- the rules -------------------------------------------------------------------------------


def check(
    checker: Checker,
    view: PlanView,
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
    for index in checker.fallen_back:
        if plan is not None:  # the worker routes it again the same way
            plan.tasks[index].specialist = None
    summary = None
    if plan is not None and graph is not None:
        summary = summarize(plan, graph, checker.edges)
    result = checker.result(plan, routes, summary)
    callers = [
        f"{name} (task {task_id})"
        for task_id, name in routes.items()
        if (spec := registry.get(name)) is not None
        and spec.backend_for(plan.agents_backend if plan is not None else None) == "claude-code"
    ]
    return result.model_copy(update={"claude_code_callers": callers})


def _check_dependencies(checker: Checker, view: PlanView) -> TaskGraph | None:
    """Duplicate ids, unknown and self dependencies, cycles. The graph, when acyclic."""
    if not view.tasks:
        if view.tasks_given == 0 and not checker.nothing_to_do:
            checker.error(("tasks",), f"the plan has no tasks{checker.no_tasks_hint}")
        return None
    first: dict[str, TaskView] = {}
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
    checker: Checker, view: PlanView, base_dir: Path, override: Path | None
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


def _check_specialists_dir(checker: Checker, view: PlanView, base_dir: Path) -> Path | None:
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
    checker: Checker, view: PlanView, registry: SpecialistRegistry, *, missing: Severity
) -> dict[str, str]:
    routes: dict[str, str] = {}
    for key, name in view.roles:
        if registry.get(name) is None:
            checker.add(missing, (key,), _unknown(name, registry, missing))
    unmatched: list[str] = []
    default = registry.default_specialist()
    for task in view.tasks:
        if task.specialist is not None:
            named = _named_specialist(checker, task, registry, missing, default)
            if named is not None:
                routes.setdefault(task.id, named)
        elif task.routable and task.title is not None:
            specialist = registry.route(task.title, task.prompt)
            if specialist is not None:
                routes.setdefault(task.id, specialist.name)
            elif default is not None:
                routes.setdefault(task.id, default.name)
                unmatched.append(task.id)
            else:
                listing = ", ".join(registry.names()) or "none"
                checker.add(
                    missing,
                    ("tasks", task.index),
                    f"no specialist matches task '{task.id}'; set `specialist:` (known: {listing})"
                    + (_AFTER_CLONE if missing == "warning" else ""),
                )
    if unmatched and default is not None:
        shown = ", ".join(unmatched[:10]) + (" ..." if len(unmatched) > 10 else "")
        many = len(unmatched) > 1
        checker.notes.append(
            f"no specialist matches {len(unmatched)} task{'s' if many else ''} by "
            f"{'their' if many else 'its'} words: {'they go' if many else 'it goes'} to the "
            f"default specialist, {default.name} ({shown})"
        )
    return routes


def _unknown(
    name: str, registry: SpecialistRegistry, missing: Severity, *, task: bool = False
) -> str:
    close = registry.close_names(name)
    listing = ", ".join(registry.names()) or "none"
    known = f"known specialists: {listing}" if task else f"known: {listing}"
    hint = f"did you mean {' or '.join(map(repr, close))}?" if close else known
    if task and registry.errors:
        hint += "; some definitions could not be loaded, see the warnings"
    return f"unknown specialist '{name}' ({hint})" + (_AFTER_CLONE if missing == "warning" else "")


def _named_specialist(
    checker: Checker,
    task: TaskView,
    registry: SpecialistRegistry,
    missing: Severity,
    default: Specialist | None,
) -> str | None:
    """The specialist a task names, if it exists. A marker (`@name`) naming none falls back
    to routing, with a warning; a `specialist:` naming none is an error."""
    assert task.specialist is not None
    path: PathKey = ("tasks", task.index, "specialist")
    spec = registry.get(task.specialist)
    if spec is not None:
        return spec.name
    if task.id in checker.soft_specialists and task.title is not None:
        fallback = registry.route(task.title, task.prompt) or default
        if fallback is not None:
            checker.warning(
                path,
                f"no specialist '{task.specialist}' (no agent file "
                f".claude/agents/{task.specialist}.md): task '{task.id}' goes to "
                f"{fallback.name} instead",
            )
            checker.fallen_back.append(task.index)
            return fallback.name
    checker.add(missing, path, _unknown(task.specialist, registry, missing, task=True))
    return None


_AFTER_CLONE = "; checked again on the clone, whose .claude/agents/ may define it"


def _normalize_file(name: str) -> str:
    return posixpath.normpath(name.replace("\\", "/"))


def _check_files(checker: Checker, view: PlanView, graph: TaskGraph) -> None:
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


def _check_environment(checker: Checker, view: PlanView) -> None:
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
    checker: Checker, view: PlanView, base_dir: Path, repository: Path | None, *, remote: bool
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
