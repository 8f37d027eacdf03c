"""The boundary models between the CLI, the workflows and the activities of an execution."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import BaseModel, Field

from coordinator.plan import Plan, is_clone_url
from coordinator.report import Workspace


class ExecutionInput(BaseModel):
    """What `coord run` hands the ExecutionWorkflow. No secrets: keys come from the worker."""

    execution_id: str
    plan: Plan
    # The folder the plan came from: relative paths in the plan resolve against it.
    plan_dir: str
    # The plan's `repository` resolved: an absolute local path, or a clone URL.
    repository: str


class SetupInput(BaseModel):
    execution_id: str
    plan: Plan
    plan_dir: str
    repository: str


class PlanCheck(BaseModel):
    """The plan validated again on the worker, where it will run."""

    errors: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    routes: dict[str, str] = Field(default_factory=dict)


class PrepareWorkspaceInput(BaseModel):
    execution_id: str
    repository: str
    base_branch: str | None
    branch: str


class SetupResult(BaseModel):
    check: PlanCheck
    workspace: Workspace | None = None

    @property
    def ok(self) -> bool:
        return not self.check.errors and self.workspace is not None


def default_branch(execution_id: str) -> str:
    return f"coord/{execution_id}"


def new_execution_id(plan_name: str) -> str:
    return f"{plan_name}-{secrets.token_hex(3)}"


def build_execution_input(
    plan: Plan,
    plan_file: Path,
    *,
    repository_override: Path | None = None,
    execution_id: str | None = None,
) -> ExecutionInput:
    """Resolve what the workflow must not compute itself: paths, and a random id."""
    plan_dir = plan_file.resolve().parent
    if repository_override is not None:
        repository = str(repository_override.resolve())
    elif is_clone_url(plan.repository):
        repository = plan.repository
    else:
        repository = str((plan_dir / plan.repository).resolve())
    return ExecutionInput(
        execution_id=execution_id or new_execution_id(plan.name),
        plan=plan,
        plan_dir=str(plan_dir),
        repository=repository,
    )
