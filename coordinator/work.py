"""The boundary models of the work activities: quality gates and specialist attempts.

They travel through workflow history, so they stay small: an output tail of at most ~4 KB and
the path of the full log on the worker, never the log itself.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from coordinator.backends import SpecialistBackend
from coordinator.branches import CreateWorktreeRequest, LandResult, MergeRequest, TaskWorktree
from coordinator.claude import AgentAttempt
from coordinator.environment import CommandEnvironment
from coordinator.plan import Gate

GateLevel = Literal["task", "layer", "system", "final"]
GateExpectation = Literal["exit_zero", "empty_output"]
# task: implement or fix a task; fix: a gate round's or the review's fixer; review: a verdict.
SpecialistRole = Literal["task", "fix", "review"]

# Bytes of combined output kept in a result; the full output stays in the log file.
OUTPUT_TAIL_BYTES = 4096
SUMMARY_CHARS = 200


class GateRequest(BaseModel):
    execution_id: str
    level: GateLevel
    scope: str  # the task id, the layer name, or "system"
    gate: Gate
    cwd: str  # the worktree or workspace the gate runs in
    # Extra environment for the command, on top of the worker's (scrubbed) environment.
    # Workflow input: never put secrets here.
    env: dict[str, str] = Field(default_factory=dict)
    attempt: int = Field(ge=1)  # the fix loop's attempt, part of the log file's name
    # The plan's env, env_from (names) and prepared environment.
    environment: CommandEnvironment | None = None


class GateResult(BaseModel):
    """The verdict on one gate run. A failing gate is a result, not an error.

    `passed` is exit code 0 and, for `expect: empty_output`, no output on stdout or stderr.
    Whitespace-only output (a lone newline) counts as empty: tools that report a problem name
    it, and a stray blank line must not fail a clean `gofmt -l .`.
    """

    name: str
    level: GateLevel
    scope: str
    passed: bool
    exit_code: int | None  # None when the gate was killed at its timeout
    timed_out: bool
    expect: GateExpectation
    duration_s: float
    output_tail: str  # the last ~4 KB of combined stdout and stderr
    log_path: str  # the full output, on the worker that ran the gate


class SpecialistRequest(BaseModel):
    execution_id: str
    task_id: str
    task_title: str
    task_prompt: str
    files: list[str] = Field(default_factory=list)  # the files the task owns
    specialist: str  # the specialist's name
    backend: SpecialistBackend
    command: str | None = None  # the shell command line (backend "command")
    timeout_s: int = Field(gt=0)
    cwd: str  # the task's worktree
    attempt: int = Field(ge=1)
    feedback: str = ""  # the failing gate output or review findings of the previous attempt
    guidance: str = ""  # a human's guidance after an escalation
    # Documents to read (absolute paths on the worker): the plan's context, the review patch.
    context_paths: list[str] = Field(default_factory=list)
    # The plan's env, env_from (names) and prepared environment.
    environment: CommandEnvironment | None = None
    # Claude specialists: the definition is read on the worker from `specialist_source` (its
    # file, or "builtin:<name>"); the rest are the plan's and the budget's limits.
    role: SpecialistRole = "task"
    specialist_source: str = ""
    model: str | None = None  # the plan's default model, used when the front matter has none
    max_turns: int | None = None
    max_cost_usd: float | None = Field(default=None, ge=0)  # what this attempt may still spend
    max_tokens: int | None = Field(default=None, ge=0)
    # Make the task's worktree (at `cwd`) first, in the same activity: one round trip less
    # per task (activities/worktree_prepare.py). None: it was made by its own step.
    worktree: CreateWorktreeRequest | None = None
    # A task's turn: after the specialist succeeded, its gates and its landing in the same
    # activity (activities/task_turn.py). None: the workflow schedules them itself.
    then: FollowThrough | None = None


class FollowThrough(BaseModel):
    """What a task's specialist activity does after a successful turn, instead of one
    round trip each: the task's `gates` in its worktree (all of them, in order, as the
    workflow would run them; log files named for the task's attempt), then, if they all pass and
    `merge` is given, the landing (commit, merge, push to `home`, removal) from `base_commit`
    (None: the base of the worktree the activity made)."""

    gates: list[Gate] = Field(default_factory=list)
    merge: MergeRequest | None = None
    home: str | None = None
    base_commit: str | None = None
    # The execution moved to another host since (set when re-homing rebinds the request):
    # the task may have landed there, from the home, before its host was lost.
    moved: bool = False


class SpecialistResult(BaseModel):
    """One attempt at a task. A failed attempt (`ok` False) is a result for the fix loop.

    `summary` is one line: the last non-empty output line when the attempt succeeded, what
    went wrong (exit code or timeout, then the last output line) when it did not. The fix
    loop's feedback is `output_tail`.
    """

    task_id: str
    specialist: str
    attempt: int
    ok: bool
    summary: str
    exit_code: int | None  # None when killed at the timeout (or for backends without one)
    timed_out: bool
    duration_s: float
    output_tail: str
    log_path: str
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None
    agent: AgentAttempt | None = None  # Claude specialists: model, turns, usage, transcript
    worktree: TaskWorktree | None = None  # the worktree the activity made (`worktree` asked)
    # What the activity did after the turn (`then` asked): the gates' results (None: not
    # run there, the workflow runs them) and the landing (None: not landed there).
    gates: list[GateResult] | None = None
    landed: LandResult | None = None
