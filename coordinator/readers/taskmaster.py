"""Taskmaster's `tasks.json` (`.taskmaster/tasks/tasks.json`, or the older `tasks/tasks.json`):
tagged (`{"master": {"tasks": [...]}}`, one task list per tag) or legacy (`{"tasks": [...]}`).

A task is `{id, title, description, details, testStrategy, status, dependencies, subtasks}`.
A task with subtasks is their container: the subtasks are the tasks (`5.1`, `5.2`), each
waiting for what its parent waits for and for the siblings it names (`[1, 2]`, or full ids
`"5.1"`); depending on a container is depending on all its subtasks. `status: done` (and
`review`) is done, `cancelled` skipped, `deferred` deferred (and so is whatever waits for it);
`pending`, `in-progress` and `blocked` are to do. The prompt is the description, the details
and the test strategy (a subtask's parent's too).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from coordinator.loader import LoadIssue, PathKey, load_plan_text
from coordinator.progress import TaskTick
from coordinator.readers.build import ReadPlan, ReadTask, build_plan
from coordinator.readers.files import find_paths
from coordinator.readers.model import Issues, ParsedPlan, Ref, Status

_STATUS: dict[str, Status] = {
    "done": "done",
    "completed": "done",
    "review": "done",
    "cancelled": "skipped",
    "canceled": "skipped",
    "deferred": "deferred",
    "pending": "open",
    "in-progress": "open",
    "in_progress": "open",
    "blocked": "open",
    "todo": "open",
}


def is_taskmaster(text: str) -> bool:
    """Taskmaster's shapes: a task list with numeric ids and Taskmaster's keys."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return False
    if not isinstance(data, dict):
        return False
    lists = (
        [data["tasks"]]
        if isinstance(data.get("tasks"), list)
        else [
            v["tasks"]
            for v in data.values()
            if isinstance(v, dict) and isinstance(v.get("tasks"), list)
        ]
    )
    tasks = [t for lst in lists for t in lst if isinstance(t, dict)]
    return bool(tasks) and all(
        str(t.get("id", "")).isdigit() and ("status" in t or "dependencies" in t or "subtasks" in t)
        for t in tasks
    )


def tags_of(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return []
    return [k for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("tasks"), list)]


class TaskmasterReader:
    def __init__(
        self, data: dict[str, Any], lines: dict[PathKey, int], source: str, tag: str | None
    ) -> None:
        self.data, self.lines, self.source = data, lines, source
        self.issues = Issues()
        self.plan = ReadPlan(source, "taskmaster", [], self.issues, tick_format="taskmaster")
        self.tag = tag
        self.containers: dict[str, list[str]] = {}

    def read(self) -> ReadPlan:
        prefix, tasks = self._task_list()
        if tasks is None:
            return self.plan
        self.plan.tag = None if prefix == ("tasks",) else str(prefix[0])
        for i, raw in enumerate(tasks):
            if isinstance(raw, dict):
                self._task(raw, (*prefix, i))
        self._defer_dependants()
        self.plan.empty_hint = " (the file's task list is empty)"
        return self.plan

    def _task_list(self) -> tuple[PathKey, list[Any] | None]:
        if isinstance(self.data.get("tasks"), list):
            if self.tag is not None and self.tag != "master":
                self.issues.error(
                    1, f"--tag {self.tag}: this tasks.json has no tags (one task list)"
                )
            return ("tasks",), self.data["tasks"]
        tags = tags_of(self.data)
        tag = self.tag or ("master" if "master" in tags else tags[0] if len(tags) == 1 else None)
        if tag is None or tag not in tags:
            known = ", ".join(tags) or "none"
            why = f"no tag '{tag}'" if tag else "several tags"
            self.issues.error(1, f"{why} in this tasks.json: choose one with --tag (tags: {known})")
            return (), None
        self.plan.notes.append(f"Taskmaster tag '{tag}' (of {', '.join(tags)})")
        return (tag, "tasks"), self.data[tag]["tasks"]

    def _line(self, path: PathKey) -> int:
        for end in range(len(path), -1, -1):
            if (line := self.lines.get(path[:end])) is not None:
                return line
        return 1

    def _task(self, raw: dict[str, Any], path: PathKey) -> None:
        task_id = str(raw.get("id", "")).strip()
        status = self._status(raw, path)
        subtasks = [s for s in raw.get("subtasks") or [] if isinstance(s, dict)]
        deps = self._deps(raw, path, task_id, None)
        if not subtasks:
            self._add(raw, path, task_id, status, deps, context="")
            return
        self.containers[task_id] = [f"{task_id}.{str(s.get('id', '')).strip()}" for s in subtasks]
        siblings = (task_id, set(self.containers[task_id]))
        context = f"Part of task {task_id}: {raw.get('title', '')}\n{_text(raw)}".strip()
        for j, sub in enumerate(subtasks):
            sub_path = (*path, "subtasks", j)
            sub_status = self._status(sub, sub_path)
            if status != "open" and sub_status == "open":
                sub_status = status  # a closed parent closes its subtasks
            sub_id = f"{task_id}.{str(sub.get('id', '')).strip()}"
            sub_deps = deps + self._deps(sub, sub_path, sub_id, siblings)
            self._add(sub, sub_path, sub_id, sub_status, sub_deps, context)

    def _status(self, raw: dict[str, Any], path: PathKey) -> Status:
        value = str(raw.get("status") or "pending").strip().lower()
        if value not in _STATUS:
            self.issues.warning(
                self._line((*path, "status")), f"unknown status '{value}': taken as to do"
            )
        return _STATUS.get(value, "open")

    def _deps(
        self, raw: dict[str, Any], path: PathKey, own: str, siblings: tuple[str, set[str]] | None
    ) -> list[Ref]:
        deps = raw.get("dependencies") or []
        if not isinstance(deps, list):
            self.issues.error(
                self._line((*path, "dependencies")), "dependencies must be a list of ids"
            )
            return []
        refs = []
        for j, dep in enumerate(deps):
            line = self._line((*path, "dependencies", j))
            text = str(dep).strip()
            if siblings is not None and "." not in text:
                # A number in a subtask's list names a sibling (Taskmaster's convention).
                sibling = f"{siblings[0]}.{text}"
                text = sibling if sibling in siblings[1] else text
            refs.append(Ref(text, line, f"dependencies of {own} (line {line})"))
        return refs

    def _add(
        self,
        raw: dict[str, Any],
        path: PathKey,
        task_id: str,
        status: Status,
        deps: list[Ref],
        context: str,
    ) -> None:
        line = self._line((*path, "id"))
        title = " ".join(str(raw.get("title") or "").split())
        task = ReadTask(id=task_id, title=title or f"Task {task_id}", line=line, status=status)
        task.refs = deps
        task.refs_line = self._line((*path, "dependencies"))
        task.prompt = _text(raw)
        task.prompt_line = line
        task.context = context
        task.files = [(p, line) for p in find_paths(title)]
        task.tick = TaskTick(taskmaster_id=task_id)
        self.plan.tasks.append(task)

    def _defer_dependants(self) -> None:
        """A task waiting for a deferred one cannot run either: deferred too, and said."""
        by_id = {t.id: t for t in self.plan.tasks}
        changed = True
        while changed:
            changed = False
            for task in self.plan.tasks:
                if task.status != "open":
                    continue
                for ref in task.refs or []:
                    targets = self.containers.get(ref.text, [ref.text])
                    waiting = [
                        by_id[t] for t in targets if t in by_id and by_id[t].status == "deferred"
                    ]
                    if waiting:
                        task.status = "deferred"
                        self.issues.warning(
                            task.line, f"{task.id} waits for deferred {waiting[0].id}: deferred too"
                        )
                        changed = True
                        break
        for task in self.plan.tasks:  # depending on a container: on all its subtasks
            refs: list[Ref] = []
            for ref in task.refs or []:
                targets = self.containers.get(ref.text, [ref.text])
                refs += [Ref(t, ref.line, ref.why) for t in targets]
            task.refs = refs


def _text(raw: dict[str, Any]) -> str:
    parts = [str(raw.get(key) or "").strip() for key in ("description", "details")]
    strategy = str(raw.get("testStrategy") or "").strip()
    if strategy:
        parts.append(f"Test strategy: {strategy}")
    return "\n\n".join(part for part in parts if part)


def read_taskmaster(
    text: str,
    source: str,
    *,
    tag: str | None = None,
    defaults: Mapping[str, Any] | None = None,
    name_hint: str | None = None,
) -> ParsedPlan | list[LoadIssue]:
    """The plan, or the problems when the file cannot be read as JSON at all."""
    loaded = load_plan_text(text, source=source, fmt="json")
    if loaded.data is None:
        return loaded.issues
    reader = TaskmasterReader(loaded.data, loaded.lines, source, tag)
    for issue in loaded.issues:
        reader.issues.add(issue)
    plan = reader.read()
    metadata = loaded.data.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("projectName"), str):
        plan.title = metadata["projectName"]
    plan.name_hint = name_hint or (plan.tag if plan.tag and plan.tag != "master" else None)
    if plan.name_hint is None and plan.title is None:
        plan.name_hint = "taskmaster"
    return build_plan(plan, defaults)


__all__ = ["is_taskmaster", "read_taskmaster", "tags_of"]
