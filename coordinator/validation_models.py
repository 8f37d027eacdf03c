"""What validating a plan returns: located problems, routes, the schedule summary."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from coordinator.plan import Plan

Severity = Literal["error", "warning"]


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


class EdgeSummary(BaseModel):
    """One dependency of the plan: `task` waits for `depends_on`, because of `why`."""

    task: str
    depends_on: str
    why: str


class PlanSummary(BaseModel):
    task_count: int
    max_parallel: int
    layers: list[LayerSummary]
    # Steps of a simulated run where each task takes one unit of time and at most
    # `max_parallel` run at once: the tasks of a wave run together.
    waves: list[list[str]]
    critical_path: list[str]
    critical_path_length: int
    # Every dependency with where it came from (the plan's order, the author, a shared file).
    edges: list[EdgeSummary] = Field(default_factory=list)


class ValidationResult(BaseModel):
    # The parsed plan, when it parsed, even if other rules failed: check `ok` before using it.
    plan: Plan | None
    # The file the plan was read from (for a folder: the plan file found in it).
    plan_file: str | None = None
    problems: list[Problem]
    routes: dict[str, str]  # task id -> specialist name (named in the plan or routed)
    summary: PlanSummary | None  # only when there are no errors
    # Which reader read the file ("speckit", "taskmaster", ...; None: YAML or JSON plan data).
    reader: str | None = None
    # Said, not warned about: tasks left out as done, the default specialist taking tasks no
    # specialist matches, the repository used when the plan names none.
    notes: list[str] = Field(default_factory=list)
    # Tasks were found and all are done: nothing to run, and that is not an error.
    nothing_to_do: bool = False
    # Tasks that run on Claude Code ("name (task id)"): the machine that runs them needs the
    # claude-agent-sdk package and ANTHROPIC_API_KEY (`coord validate` says what this one lacks).
    claude_code_callers: list[str] = Field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors


__all__ = [
    "EdgeSummary",
    "LayerSummary",
    "PlanSummary",
    "Problem",
    "Severity",
    "ValidationResult",
]
