"""Where a plan came from, so that finished tasks can be ticked back in it.

A plan read from a file in the repository (a spec-kit or Kiro `tasks.md`, a Taskmaster
`tasks.json`, a breakdown) carries a `PlanSource`: the file's path in the repository and, for
each task, what marks it done there (its checkbox line as read, or its Taskmaster id). When a
task's commit lands on the execution branch, the same commit ticks it (`coordinator.ticks`
does the text edit), so the branch and its pull request carry the plan's progress the way the
planning tool expects. Boundary models only: they travel in the plan, in workflow history.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TickItem(BaseModel):
    """A checkbox line of the plan file, as read when the plan was validated."""

    model_config = ConfigDict(extra="forbid")

    line: int = Field(ge=1)
    text: str


class TaskTick(BaseModel):
    """How one task is marked done in its plan file.

    Markdown: its own checkbox line(s) (`items`; a heading-style task may have several step
    boxes), and a container item (`parent`, e.g. Kiro's `- [ ] 2.` above `2.1`, `2.2`) that is
    ticked once every one of its `children` items is. Taskmaster: the task's id (`"5"`, or
    `"5.2"` for a subtask) in the file's tag.
    """

    model_config = ConfigDict(extra="forbid")

    items: list[TickItem] = Field(default_factory=list)
    parent: TickItem | None = None
    children: list[TickItem] = Field(default_factory=list)
    taskmaster_id: str | None = None


class PlanSource(BaseModel):
    """The plan file a plan was read from, for ticking its tasks back when they pass.

    `path` is relative to the repository's root (set by `coord run` when the file lives in
    the repository it runs on); without it nothing is ticked.
    """

    model_config = ConfigDict(extra="forbid")

    reader: str
    format: Literal["markdown", "taskmaster"] = "markdown"
    path: str | None = None
    mark: Literal["x", "X"] = "x"  # spec-kit ticks `[X]`, the others `[x]`
    tag: str | None = None  # Taskmaster: the tag whose tasks these are
    tasks: dict[str, TaskTick] = Field(default_factory=dict)

    def request_for(self, task_id: str) -> PlanTickRequest | None:
        """What the merge of `task_id`'s commit must tick, or None."""
        tick = self.tasks.get(task_id)
        if self.path is None or tick is None:
            return None
        return PlanTickRequest(
            path=self.path, format=self.format, mark=self.mark, tag=self.tag, tick=tick
        )


class PlanTickRequest(BaseModel):
    """One task's tick, handed to the activity that lands its commit."""

    model_config = ConfigDict(extra="forbid")

    path: str
    format: Literal["markdown", "taskmaster"] = "markdown"
    mark: Literal["x", "X"] = "x"
    tag: str | None = None
    tick: TaskTick


__all__ = ["PlanSource", "PlanTickRequest", "TaskTick", "TickItem"]
