"""The boundary models between the CLI, the workflows and the activities of an execution."""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from coordinator.backends import SpecialistBackend
from coordinator.branches import DiffSummary
from coordinator.environment import CommandEnvironment
from coordinator.escalation import Escalation, Resolution
from coordinator.handoff import GithubHandoffResult, GithubPhaseInput
from coordinator.plan import (
    Plan,
    SetupCommand,
    git_ref_problem,
    is_clone_url,
    local_path,
    plan_folder,
)
from coordinator.report import GateSummary, Progress, TaskState, Workspace


class ExecutionInput(BaseModel):
    """What `coord run` hands the ExecutionWorkflow. No secrets: keys come from the worker."""

    execution_id: str
    plan: Plan
    # The folder the plan came from: relative paths in the plan resolve against it.
    plan_dir: str
    # The plan's `repository` resolved: an absolute local path, or a clone URL.
    repository: str
    # The execution's page in the Temporal Web UI, when `coord run` knows it (for links in
    # the pull request and the status comment).
    ui_url: str | None = None
    # Set when the execution continues as new while it waits for an approval.
    carry: ExecutionCarry | None = None


DEFAULT_SPECIALIST_TIMEOUT_S = 1800


class PlanCheckInput(BaseModel):
    plan: Plan
    plan_dir: str
    # The execution's clone: its .claude/agents count, also for clone-URL repositories.
    workspace: str


class SpecialistRef(BaseModel):
    """What the workflow needs to dispatch a specialist; its prompt stays in its file."""

    name: str
    backend: SpecialistBackend
    command: str | None = None
    timeout_s: int = DEFAULT_SPECIALIST_TIMEOUT_S
    max_turns: int | None = None
    # Claude specialists: where the definition lives (a file, or "builtin:<name>").
    source: str = ""


class PlanCheck(BaseModel):
    """The plan validated again on the worker, where it will run."""

    errors: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    routes: dict[str, str] = Field(default_factory=dict)
    # Every specialist the execution may call: the tasks', the fixer, the reviewer.
    specialists: dict[str, SpecialistRef] = Field(default_factory=dict)


class PrepareWorkspaceInput(BaseModel):
    execution_id: str
    repository: str
    base_branch: str | None
    branch: str
    # Re-homing (workflows/placement.py): the branch comes from this home (where it holds every
    # finished task) and must contain `resume_head`, the execution's base.
    home: str | None = None
    resume_head: str | None = None
    # The repository's own remote may be the branch's home (pushed after setup and every
    # merge): only for plans that ask no approval, so nothing leaves the machine before one.
    remote_home: bool = False


class PrepareEnvironmentInput(BaseModel):
    execution_id: str
    workspace: str  # the execution's clone
    plan_dir: str
    context: list[str] = Field(default_factory=list)  # the plan's entries, as written
    make_env_dir: bool = False  # the plan has setup commands: they install there
    status_file: str | None = None  # relative to the workspace: kept out of git


class PreparedEnvironment(BaseModel):
    env_dir: str | None = None
    # Copies of the context documents in the execution's artifacts, absolute, in plan order.
    context_paths: list[str] = Field(default_factory=list)


class SetupCommandRequest(BaseModel):
    execution_id: str
    command: SetupCommand
    cwd: str  # the execution's clone, or a task's worktree
    environment: CommandEnvironment | None = None
    round: int = Field(default=1, ge=1)  # a human's retry starts round 2: part of the log name


class SetupCommandResult(BaseModel):
    name: str
    duration_s: float
    log_path: str
    # Tracked files the command changed, put back: the branch changes only through tasks.
    restored: list[str] = Field(default_factory=list)


class WorktreeSetupRequest(BaseModel):
    """`setup_per_worktree`: every setup command again, in a new worktree."""

    execution_id: str
    worktree: str
    scope: str  # the task (or fix, or review) the worktree is for
    commands: list[SetupCommand]
    environment: CommandEnvironment | None = None


class WorktreeSetupResult(BaseModel):
    ran: bool  # False: this worktree was set up before (a later attempt reuses it)


class StatusFileRequest(BaseModel):
    path: str  # absolute, on the worker
    progress: Progress
    # The clone: below it, no link is followed (code a specialist wrote can plant one).
    root: str | None = None


class SetupResult(BaseModel):
    workspace: Workspace
    check: PlanCheck
    environment: CommandEnvironment | None = None
    context_paths: list[str] = Field(default_factory=list)
    skipped_setup: list[str] = Field(default_factory=list)  # commands a human skipped
    aborted: bool = False  # a human aborted after a setup command kept failing

    @property
    def ok(self) -> bool:
        return not self.check.errors


def default_branch(execution_id: str) -> str:
    return f"coord/{execution_id}"


_EXECUTION_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")


def execution_id_problem(execution_id: str) -> str | None:
    """Why `execution_id` cannot be used: it names a workflow, a folder and a branch."""
    if not _EXECUTION_ID.match(execution_id) or git_ref_problem(f"coord/{execution_id}"):
        return (
            f"execution id '{execution_id}' must be 1-100 characters of a-z, 0-9, '_', '.', "
            "'-', start with a letter or digit, and contain no '..'"
        )
    return None


def new_execution_id(plan_name: str) -> str:
    return f"{plan_name}-{secrets.token_hex(3)}"


def plan_path_in(plan_file: Path, repository: Path) -> str | None:
    """The plan file's path relative to the repository's top, when it lives there."""
    try:
        relative = plan_file.absolute().relative_to(repository.absolute())
    except ValueError:
        return None
    return relative.as_posix()


def build_execution_input(
    plan: Plan,
    plan_file: Path,
    *,
    repository_override: Path | None = None,
    execution_id: str | None = None,
) -> ExecutionInput:
    """Resolve what the workflow must not compute itself: paths, and a random id."""
    plan_dir = plan_folder(plan_file)
    if repository_override is not None:
        repository = str(repository_override.expanduser().absolute())
    elif is_clone_url(plan.repository):
        repository = plan.repository
    else:
        repository = str(local_path(plan.repository, plan_dir))
    if plan.source is not None and not is_clone_url(repository):
        # Ticking finished tasks back needs the plan file's place in the repository.
        plan.source.path = plan_path_in(plan_file, Path(repository))
    return ExecutionInput(
        execution_id=execution_id or new_execution_id(plan.name),
        plan=plan,
        plan_dir=str(plan_dir),
        repository=repository,
    )


class ParkedTask(BaseModel):
    """A task waiting on a human when the scheduler continues as new: on the escalation's
    answer, or (answered "retry") on a slot to run again with the guidance."""

    task_id: str
    escalation: Escalation | None = None
    budget_resolution: bool = False  # the escalation is about the task's budget
    guidance: str = ""


class SchedulerCarry(BaseModel):
    """What the implementation scheduler hands to its next run (continue-as-new)."""

    states: list[TaskState]
    parked: list[ParkedTask] = Field(default_factory=list)
    task_cost_limit: dict[str, float] = Field(default_factory=dict)
    task_token_limit: dict[str, int] = Field(default_factory=dict)
    answers: dict[str, Resolution] = Field(default_factory=dict)
    escalations: int = 0
    phase_spent: float = 0.0
    raised_budget: float | None = None
    gated_layers: list[str] = Field(default_factory=list)
    runs: int = 0
    updates_since: datetime | None = None  # when the phase began sending task updates


class PhaseInput(BaseModel):
    """What every phase after setup works from."""

    execution_id: str
    plan: Plan
    workspace: Workspace
    routes: dict[str, str]
    specialists: dict[str, SpecialistRef]
    # The GitHub handoff, for the integration and review phases; None: none (or no token).
    github: GithubPhaseInput | None = None
    # What every command gets (env, env_from names, the prepared environment); None: nothing.
    environment: CommandEnvironment | None = None
    context_paths: list[str] = Field(default_factory=list)
    # The execution's budget (USD) as it stands when the phase starts (a human may have
    # raised the plan's), and what Claude specialists spent before this phase.
    budget_usd: float | None = None
    spent_usd: float = 0.0
    # The implementation scheduler's state when it continues as new (None: a first run).
    carry: SchedulerCarry | None = None
    # The execution understands coalesced task updates (TASKS_UPDATE): executions started
    # before them get one signal per task transition.
    coalesce_updates: bool = False


class ImplementationResult(BaseModel):
    tasks: list[TaskState]
    # With coalesced updates: the task states the phase had not signalled when it ended.
    updates: list[TaskState] = Field(default_factory=list)
    aborted: bool = False
    head: str


class GateRoundResult(BaseModel):
    """The outcome of gates with their fix loop (layer gates, validation)."""

    gates: list[GateSummary] = Field(default_factory=list)
    passed: bool
    aborted: bool = False
    head: str


class ReviewResult(BaseModel):
    verdict: Literal["approve", "changes_requested", "skipped"]
    findings: str = ""
    rounds: int = 0
    aborted: bool = False
    head: str
    # With a GitHub handoff: the review as posted on the pull request, and the head pushed.
    review_event: str | None = None
    pushed_head: str | None = None
    problems: list[str] = Field(default_factory=list)


class IntegrationResult(BaseModel):
    head: str
    diff: DiffSummary
    github: GithubHandoffResult | None = None


class ExecutionCarry(BaseModel):
    """What the ExecutionWorkflow hands to its next run when it continues as new, which it
    does only while waiting for an approval (no phase is running then)."""

    progress: Progress
    human_todo: list[str] = Field(default_factory=list)
    # The phases' input without the plan (the request has it): PhaseInput's fields.
    phase: dict[str, Any]
    stage: Literal["before_start", "before_handoff"]
    runs: int = 1


ExecutionInput.model_rebuild()
