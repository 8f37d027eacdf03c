"""Task branches and worktrees: the boundary models of the git activities, and their names.

Each task works in its own worktree on `coord-task/<execution id>/<task id>`, cut from the
execution branch; its work lands on the execution branch as exactly one commit
"<task id>: <title>" carrying a `Coord-Task: <task id>` trailer, which is how a retried step
recognises work already done.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Annotated

from pydantic import BaseModel, Field

from coordinator.progress import PlanTickRequest

TASK_BRANCH_PREFIX = "coord-task/"
TASK_TRAILER = "Coord-Task"
# Worktrees and commits of the coordinator's own fixes; task ids may not start with it, so a
# fix is never mistaken for a task (merges recognise a task's commit by its id).
FIX_PREFIX = "coord-fix-"
# The commit a task branch was cut from, kept as a ref next to the branch: it survives
# crashes, keeps the commit alive, and tells "the task's own commit" from the base.
BASE_REF_PREFIX = "refs/coord-base/"
# The stat in a DiffSummary stays small: it travels in workflow history.
MAX_STAT_BYTES = 4096
MAX_DIFF_FILES = 1000


def task_branch(execution_id: str, task_id: str) -> str:
    return f"{TASK_BRANCH_PREFIX}{execution_id}/{task_id}"


def is_fix(task_id: str) -> bool:
    """The id of one of the coordinator's own fixes, not a plan's task."""
    return task_id.startswith(FIX_PREFIX)


def base_ref(branch: str) -> str:
    return BASE_REF_PREFIX + branch


def task_worktree_path(workspace_root: Path, execution_id: str, task_id: str) -> Path:
    return workspace_root / execution_id / "worktrees" / task_id


def worktree_beside(clone: str, task_id: str) -> str:
    """Where the worktree of `task_id` is made, from the clone's path: the clone is
    `<root>/<execution>/repo` (activities/workspace.py), its worktrees are beside it
    (`task_worktree_path`). For the workflow, which has the clone's path but not the root."""
    return str(PurePosixPath(clone).parent / "worktrees" / task_id)


def artifacts_dir(workspace_root: Path, execution_id: str) -> Path:
    return workspace_root / execution_id / "artifacts"


def task_commit_message(task_id: str, title: str) -> str:
    subject = " ".join(title.split())  # one line, whatever the plan's title holds
    return f"{task_id}: {subject}\n\n{TASK_TRAILER}: {task_id}\n"


Attempt = Annotated[int, Field(ge=1)]


class CreateWorktreeRequest(BaseModel):
    execution_id: str
    workspace: str  # the execution's clone
    execution_branch: str
    task_id: str
    attempt: Attempt = 1
    # Start over from the execution branch as it stands now (after a human says retry),
    # dropping the previous attempts' work.
    fresh: bool = False


class TaskWorktree(BaseModel):
    path: str
    branch: str
    base_commit: str
    # A later attempt whose task commit could not merge is replayed onto the execution head:
    # its changes are uncommitted there, with conflict markers in these files.
    replayed: bool = False
    conflict_files: list[str] = Field(default_factory=list)
    # For the fixer: who clashed with the task, where, and both sides (coordinator/conflicts.py).
    conflict: str | None = None


class CommitRequest(BaseModel):
    worktree: str
    task_id: str
    title: str
    attempt: Attempt = 1


class CommitResult(BaseModel):
    commit: str | None
    files_changed: list[str] = Field(default_factory=list)
    no_changes: bool = False
    # Refused, nothing committed: files of a conflict replayed into the worktree still hold
    # conflict markers (path -> the marker lines), from a conflict with these others.
    unresolved: dict[str, list[int]] = Field(default_factory=dict)
    conflicting_with: list[str] = Field(default_factory=list)
    # Refused, nothing committed: these folders of the worktree are git repositories of
    # their own (activities/nested_repositories.py).
    nested: list[str] = Field(default_factory=list)


class MergeRequest(BaseModel):
    workspace: str
    execution_branch: str
    task_branch: str
    task_id: str
    title: str
    # The execution's base: a task branch missing (its host was lost) may still have landed
    # since then, which the merge then reports instead of failing.
    since: str | None = None
    # The task's line in the plan file it came from, ticked in the same commit.
    tick: PlanTickRequest | None = None


class MergeResult(BaseModel):
    merged: bool
    head: str  # the execution branch's head after the call
    conflict: str | None = None  # for the fixer: the files and what clashed
    conflict_files: list[str] = Field(default_factory=list)
    already_merged: bool = False
    commit: str | None = None  # the task's commit on the execution branch
    # With a `tick`: "ticked in tasks.md", or why the plan file was left as it was.
    tick_note: str | None = None
    # The head this merge moved the branch from (None: it did not move it). Lands of
    # parallel tasks report in any order; this tells which head is the latest.
    previous: str | None = None


class PublishRequest(BaseModel):
    """Push the execution branch to its home (coordinator/hosts.py) once `commit` is on it."""

    workspace: str
    branch: str
    home: str
    commit: str


class PublishResult(BaseModel):
    head: str  # the branch in its home after the push: `commit` or a later head


class LandRequest(BaseModel):
    """A task's last steps in one activity (activities/worktree_land.py): its commit in
    `worktree`, the merge, the push to the branch's `home` (None: none) and the worktree's
    removal with its branch. `base_commit` is the worktree's base: a retry after an earlier
    try landed and removed everything finds the task's commit from there."""

    worktree: str
    attempt: Attempt = 1
    base_commit: str
    merge: MergeRequest
    home: str | None = None
    execution_id: str


class LandResult(BaseModel):
    committed: CommitResult
    merged: MergeResult | None = None  # None: nothing to merge (conflict markers left)
    published: str | None = None  # the branch's head in its home after the push
    removed: bool = False  # the worktree and its branch are gone


class RemoveWorktreeRequest(BaseModel):
    workspace: str
    execution_id: str
    task_id: str
    delete_branch: bool = False


class PendingWorkRequest(BaseModel):
    workspace: str
    execution_id: str
    execution_branch: str


class PendingWorkResult(BaseModel):
    head: str  # the execution branch: every finished task is already merged there
    removed_worktrees: list[str] = Field(default_factory=list)  # task ids
    # Unfinished tasks whose changes were kept as a commit on their task branch, by task id.
    unfinished_branches: dict[str, str] = Field(default_factory=dict)


class DiffRequest(BaseModel):
    workspace: str
    base_commit: str
    execution_id: str
    head: str = "HEAD"


class DiffSummary(BaseModel):
    files: list[str]  # at most MAX_DIFF_FILES; total_files says how many there are
    total_files: int
    stat: str
    diff_path: str
    head: str
