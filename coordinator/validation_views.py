"""A view of a plan that also works on data that did not parse as one: what the rules of
`coordinator.validation_rules` look at, with each value's position for its location."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from coordinator.dag import TaskSpec
from coordinator.plan import Plan


@dataclass
class TaskView:
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
class PlanView:
    tasks: list[TaskView]
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


def view_of_plan(plan: Plan) -> PlanView:
    tasks = [
        TaskView(
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
    return PlanView(
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


def view_of_data(data: Mapping[str, Any]) -> PlanView:
    """What can be read from data that failed to parse; unusable values are left out
    (pydantic has reported them)."""
    raw_tasks = data.get("tasks")
    tasks: list[TaskView] = []
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
            TaskView(
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
    return PlanView(
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


__all__ = ["PlanView", "TaskView", "view_of_data", "view_of_plan"]
