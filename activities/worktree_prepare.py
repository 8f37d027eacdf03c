"""A task's worktree made by its specialist's activity, before the specialist runs: the same
step as `create_task_worktree` (activities/worktrees.py), one round trip through the server
and one workflow task less per task.

The workflow asks for it only where nothing else must happen between the two (no per-worktree
setup, no conflict replayed for a fixer to read). A retry of the activity finds the worktree
the earlier try made and keeps what the specialist did in it (a resumed Claude Code session
builds on those files): each worktree it makes says which activity made it, and a fresh
start asked for is made unless that activity is this one.
"""

from __future__ import annotations

from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.git import GitError
from activities.worktree_git import admin_dir
from activities.worktrees import WorktreeActivities
from coordinator.branches import TaskWorktree
from coordinator.work import SpecialistRequest, SpecialistResult

# In the worktree's own git folder: which activity made it (its workflow run and activity id).
MADE_BY = "coord-made-by"


async def prepare_worktree(
    worktrees: WorktreeActivities | None, request: SpecialistRequest
) -> TaskWorktree | None:
    """The worktree `request.worktree` asks for, at `request.cwd`; None when it asks none."""
    create = request.worktree
    if create is None:
        return None
    if worktrees is None:
        raise ApplicationError(
            f"task {request.task_id}: this worker's specialists cannot make worktrees",
            type="WorktreeNotMade",
            non_retryable=True,
        )
    info = activity.info()
    maker = f"{info.workflow_run_id}/{info.activity_id}"
    if info.attempt > 1 and _made_by(Path(request.cwd)) == maker:
        create = create.model_copy(update={"fresh": False})  # this activity's own, in use
    made = await worktrees.create_task_worktree(create)
    (admin_dir(Path(made.path)) / MADE_BY).write_text(maker)
    if Path(made.path).resolve() != Path(request.cwd).resolve():  # a symlinked root: same
        raise ApplicationError(
            f"task {request.task_id}: its worktree was made at {made.path}, not at the "
            f"{request.cwd} its specialist was to work in",
            type="WorktreeNotMade",
            non_retryable=True,
        )
    return made


def _made_by(path: Path) -> str | None:
    """The activity that made the worktree at `path` (None: none, or not one of these)."""
    try:
        return (admin_dir(path) / MADE_BY).read_text()
    except (OSError, GitError):
        return None


def with_worktree(result: SpecialistResult, made: TaskWorktree | None) -> SpecialistResult:
    return result if made is None else result.model_copy(update={"worktree": made})
