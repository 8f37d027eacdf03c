"""The plan: what a user hands the coordinator. Pydantic models, strict (unknown keys are errors).

These models check the shape of each field. Cross-field rules (unknown dependencies, cycles,
unknown specialists, file ownership) live in `coordinator.validation`, so that every problem
is reported at once with its location.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from coordinator.environment import Confine
from coordinator.progress import PlanSource

_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")


def git_ref_problem(name: str) -> str | None:
    """Why `name` cannot be a git branch name (git check-ref-format's rules), or None."""
    if (
        name == "@"
        or _REF_FORBIDDEN.search(name)
        or name.startswith(("/", "-"))
        or name.endswith(("/", ".", ".lock"))
        or any(part.startswith(".") for part in name.split("/"))
    ):
        return (
            f"'{name}' is not a valid git branch name (no spaces, '..', '~^:?*[\\', "
            "leading '-', '/' at either end, '.lock' or '.' at the end)"
        )
    return None


def _check_git_ref(name: str) -> str:
    if problem := git_ref_problem(name):
        raise ValueError(problem)
    return name


def _check_task_id(name: str) -> str:
    if name.startswith("coord-"):
        raise ValueError(f"'{name}': task ids starting with 'coord-' are reserved")
    return _check_in_branch_name(name)


def _check_in_branch_name(name: str) -> str:
    # Ids and plan names become part of branch names (coord-task/<execution>/<task>).
    if git_ref_problem(name):
        raise ValueError(
            f"'{name}' cannot be part of a git branch name: no '..', and no "
            "'.lock' or '.' at the end"
        )
    return name


NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
GitRef = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_check_git_ref)
]
# Ids and names end up in workflow ids, branch names and file names.
_ID = StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)
TaskId = Annotated[str, _ID, AfterValidator(_check_task_id)]
PlanName = Annotated[str, _ID, AfterValidator(_check_in_branch_name)]

# `repository` is a clone URL (scheme://... or scp-like user@host:path) or else a local path.
_CLONE_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:)")


def is_clone_url(repository: str) -> bool:
    return bool(_CLONE_URL.match(repository))


def local_path(value: str, base_dir: Path) -> Path:
    """A path from the plan: `~` expanded, relative ones taken from the plan's folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


def plan_folder(plan_file: Path) -> Path:
    """The folder relative paths in a plan file resolve against."""
    return plan_file.absolute().parent


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Gate(StrictModel):
    """A quality gate: a shell command run in the workspace, with an expectation."""

    name: NonEmpty
    run: NonEmpty
    expect: Literal["exit_zero", "empty_output"] = "exit_zero"
    timeout: Annotated[int, Field(gt=0, description="seconds")] = 600


class SetupCommand(StrictModel):
    """A command that prepares the environment before any specialist runs (installs, codegen)."""

    name: NonEmpty
    run: NonEmpty
    timeout: Annotated[int, Field(gt=0, description="seconds")] = 1800


def _number_as_text(value: object) -> object:
    # `PORT: 8080` in YAML is a number; an environment variable is text either way.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


EnvValue = Annotated[str, BeforeValidator(_number_as_text)]


class Approval(StrictModel):
    before_start: bool = False
    # None: on when a GitHub handoff is configured, off otherwise.
    before_handoff: bool | None = None


GithubRepo = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")]


class GithubHandoff(StrictModel):
    repo: GithubRepo
    # The issue whose `- [ ]` lines of finished tasks get ticked and which carries the status
    # comment (without one, the status comment goes on the pull request).
    issue: Annotated[int, Field(gt=0)] | None = None
    draft: bool = True
    title: NonEmpty | None = None  # the pull request's title (default: "coord: <plan name>")
    # A remote branch that moved under us is reported, never overwritten, unless this is on
    # (then with a lease: only over the head we saw).
    force_push: bool = False
    # Task id -> the text of its `- [ ]` item in the issue, as `coord run --from-issue` read
    # it: that exact line is ticked when the task is done (others match by id or title).
    checkboxes: dict[str, str] = Field(default_factory=dict)
    # Answers by `/coord ...` comment on the issue (or the pull request): read while a
    # question waits, first after `comment_poll_seconds`, then twice as long each time up to
    # `comment_poll_max_seconds` (docs/github.md).
    answers_by_comment: bool = True
    comment_poll_seconds: Annotated[float, Field(ge=1, le=3600)] = 30
    comment_poll_max_seconds: Annotated[float, Field(ge=1, le=86400)] = 600


class Handoff(StrictModel):
    github: GithubHandoff | None = None


WEBHOOK_URL_PATTERN = r"^https?://\S+$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Notify(StrictModel):
    """Where a JSON POST goes when the execution waits on a human and when it ends."""

    # A URL in the plan travels in workflow history; a secret one (chat webhooks usually
    # are) belongs in the worker's environment: name the variable with `webhook_env`.
    webhook: Annotated[str, StringConstraints(pattern=WEBHOOK_URL_PATTERN)] | None = None
    webhook_env: Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN)] | None = None
    # json: coord's own payload (it has a `text`, so chats take it too); slack: a Slack
    # incoming-webhook message (`text` + `blocks`) with the question, choices and commands.
    format: Literal["json", "slack"] = "json"

    @model_validator(mode="after")
    def _one_target(self) -> Notify:
        if self.webhook is not None and self.webhook_env is not None:
            raise ValueError("give either webhook or webhook_env, not both")
        return self


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
    # Claude specialists: what this task may spend over all its attempts (a human can raise
    # it when it is reached: `coord resolve --retry --budget N`).
    max_cost: Annotated[float, Field(gt=0, description="USD")] | None = None
    max_tokens: Annotated[int, Field(gt=0)] | None = None


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _parse_duration(value: object) -> object:
    """`72h`, `30m`, `45s`, `2d` or a number of seconds."""
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return int(match[1]) * _UNIT_SECONDS[match[2]]
    if isinstance(value, str):
        raise ValueError(f"'{value}' is not a duration: use e.g. 45s, 30m, 72h or 2d")
    return value


Duration = Annotated[int, BeforeValidator(_parse_duration), Field(gt=0, description="seconds")]


class Plan(StrictModel):
    name: PlanName
    repository: NonEmpty
    base_branch: GitRef | None = None
    branch: GitRef | None = None
    max_parallel: Annotated[int, Field(ge=1, le=64)] = 4
    specialists_dir: NonEmpty | None = None
    strict_files: bool = False
    approval: Approval = Field(default_factory=Approval)
    # Who fixes a failing task on attempts 2 and 3: the task's own specialist unless named.
    fixer: NonEmpty | None = None
    # Who reviews the finished branch; null skips the review phase.
    reviewer: NonEmpty | None = "code-reviewer"
    # With no answer to an escalation after this long, apply on_escalation_timeout.
    escalation_timeout: Duration | None = None
    on_escalation_timeout: Literal["abort", "skip"] = "abort"
    # When a task is skipped, its dependants are skipped too, or each escalates.
    on_skip: Literal["skip_dependants", "escalate"] = "skip_dependants"
    # Claude specialists: the model when a definition names none (or `inherit`), the turn
    # limit when a definition sets none (default 50), and what the whole execution may spend
    # in USD before it pauses with an escalation.
    model: NonEmpty | None = None
    max_turns: Annotated[int, Field(gt=0, le=1000)] | None = None
    # The backend of agent files that name none (Claude Code's own `.claude/agents/*.md`):
    # `claude-code` runs them unchanged in Claude Code; coord's built-ins keep their own.
    agents_backend: Literal["claude", "claude-code"] | None = None
    budget: Annotated[float, Field(gt=0, description="USD")] | None = None
    gates: list[Gate] = Field(default_factory=list)
    layer_gates: list[Gate] = Field(default_factory=list)
    tasks: list[Task] = Field(default_factory=list)
    handoff: Handoff = Field(default_factory=Handoff)
    notify: Notify = Field(default_factory=Notify)
    # Run in the setup phase, on the execution branch, before any specialist (and again in
    # every new worktree with setup_per_worktree).
    setup: list[SetupCommand] = Field(default_factory=list)
    setup_per_worktree: bool = False
    # Extra variables for setup, gates and specialists (never secrets: see env_from).
    env: dict[str, EnvValue] = Field(default_factory=dict)
    # Variables passed through from the worker's environment, by name (secrets go here).
    env_from: list[NonEmpty] = Field(default_factory=list)
    # Documents every specialist reads: paths beside the plan or in the repository.
    context: list[NonEmpty] = Field(default_factory=list)
    # A JSON status file in the workspace (true: .coord/execution/<execution id>.json).
    status_file: bool | NonEmpty = False
    # Setup, gates and specialists in the bubblewrap jail: where the worker has it (auto),
    # or never start without it (required), or never (off). docs/security.md.
    confine: Confine = "auto"
    # Set by the plan readers, not written by hand: the plan file this plan was read from
    # (a tasks.md, a tasks.json) and how to tick each task back in it when it passes.
    source: PlanSource | None = None

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

    @property
    def notifies(self) -> bool:
        return self.notify.webhook is not None or self.notify.webhook_env is not None
