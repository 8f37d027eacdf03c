"""A task's worktree made by its specialist's activity, before the specialist runs: the same
step as `create_task_worktree` (activities/worktrees.py), one round trip through the server
and one workflow task less per task.

The workflow asks for it only where nothing else must happen between the two (no per-worktree
setup, no conflict replayed for a fixer to read). A retry of the activity finds the worktree
the earlier try made and keeps what the specialist did in it (a resumed Claude Code session
builds on those files): a fresh start is asked of the first try only, or of a retry that
finds no worktree at all.
"""

from __future__ import annotations

from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.worktrees import WorktreeActivities
from coordinator.branches import TaskWorktree
from coordinator.work import SpecialistRequest, SpecialistResult


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
    if activity.info().attempt > 1 and Path(request.cwd).exists():
        create = create.model_copy(update={"fresh": False})
    made = await worktrees.create_task_worktree(create)
    if Path(made.path) != Path(request.cwd):
        raise ApplicationError(
            f"task {request.task_id}: its worktree was made at {made.path}, not at the "
            f"{request.cwd} its specialist was to work in",
            type="WorktreeNotMade",
            non_retryable=True,
        )
    return made


def with_worktree(result: SpecialistResult, made: TaskWorktree | None) -> SpecialistResult:
    return result if made is None else result.model_copy(update={"worktree": made})
