"""The plan: what a user hands the coordinator. Pydantic models, strict (unknown keys are errors).

These models check the shape of each field. Cross-field rules (unknown dependencies, cycles,
unknown specialists, file ownership) live in `coordinator.validation`, so that every problem
is reported at once with its location.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Ids and names end up in workflow ids, branch names and file names.
TaskId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)]
PlanName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)]
NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

# `repository` is a clone URL (scheme://... or scp-like user@host:path) or else a local path.
_CLONE_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:)")


def is_clone_url(repository: str) -> bool:
    return bool(_CLONE_URL.match(repository))


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Gate(StrictModel):
    """A quality gate: a shell command run in the workspace, with an expectation."""

    name: NonEmpty
    run: NonEmpty
    expect: Literal["exit_zero", "empty_output"] = "exit_zero"
    timeout: Annotated[int, Field(gt=0, description="seconds")] = 600


class Approval(StrictModel):
    before_start: bool = False
    # None: on when a GitHub handoff is configured, off otherwise.
    before_handoff: bool | None = None


class GithubHandoff(StrictModel):
    repo: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")]
    issue: Annotated[int, Field(gt=0)] | None = None
    draft: bool = True


class Handoff(StrictModel):
    github: GithubHandoff | None = None


class Task(StrictModel):
    id: TaskId
    title: NonEmpty
    specialist: NonEmpty | None = None
    prompt: str = ""
    layer: NonEmpty | None = None
    # None (not given) lets the layer decide: the task then depends on every task of the
    # previous layer. An explicit list, even empty, is taken as written.
    depends_on: list[TaskId] | None = None
    files: list[NonEmpty] = Field(default_factory=list)
    gates: list[Gate] = Field(default_factory=list)


class Plan(StrictModel):
    name: PlanName
    repository: NonEmpty
    base_branch: NonEmpty | None = None
    branch: NonEmpty | None = None
    max_parallel: Annotated[int, Field(ge=1, le=64)] = 4
    specialists_dir: NonEmpty | None = None
    strict_files: bool = False
    approval: Approval = Field(default_factory=Approval)
    gates: list[Gate] = Field(default_factory=list)
    layer_gates: list[Gate] = Field(default_factory=list)
    tasks: list[Task] = Field(default_factory=list)
    handoff: Handoff = Field(default_factory=Handoff)

    def task(self, task_id: str) -> Task:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)

    @property
    def approval_before_handoff(self) -> bool:
        if self.approval.before_handoff is not None:
            return self.approval.before_handoff
        return self.handoff.github is not None
