"""Landing a task's commit on the execution branch (the `merge_task` activity's work): the
commit is cherry-picked onto the execution head in memory (`git merge-tree --write-tree`),
committed in-process (activities/git_objects.py; the plan file ticked on the way), and the
branch is fast-forwarded to it; a conflict touches no working tree. See activities/worktrees.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.conflicts import (
    conflict_facts,
)
from activities.git_checkout import follow_branch
from activities.git_objects import commit_fields, head_branch, set_ref, write_commit
from activities.plan_ticks import Ticked, tick_tree
from activities.worktree_git import (
    LONG,
    current_branch,
    find_task_commit,
    git_waiting,
    is_task_commit,
    merge_tree,
    ref_exists,
    rev,
    task_base,
    uninterrupted,
    update_ref,
)
from coordinator.branches import (
    MergeRequest,
    MergeResult,
    task_commit_message,
)
from coordinator.conflicts import describe

TASK_BRANCH_MISSING = "TaskBranchMissing"
# Files the clone's checkout may write on the event loop's own thread when the branch moves.
_MOVED_HERE_AT_MOST = 200


async def merge(clone: Path, request: MergeRequest) -> MergeResult:
    exec_ref = f"refs/heads/{request.execution_branch}"
    exec_head = await rev(clone, exec_ref)
    if request.since is not None and not await ref_exists(
        clone, f"refs/heads/{request.task_branch}"
    ):
        # The task worked on a host that is gone; its commit may have landed (and been
        # published) before it went, which is what this clone got back from the home.
        landed = await find_task_commit(clone, request.since, exec_head, request.task_id)
        if landed is None:
            raise ApplicationError(
                f"task branch {request.task_branch} is not in {clone}: the task worked on "
                "another worker's clone",
                type=TASK_BRANCH_MISSING,
                non_retryable=True,
            )
        return await already_merged(clone, exec_head, landed)
    tip = await rev(clone, f"refs/heads/{request.task_branch}")
    base = await task_base(clone, request.task_branch, request.execution_branch)
    landed = await find_task_commit(clone, base, exec_head, request.task_id)
    if landed is not None:
        return await already_merged(clone, exec_head, landed)
    message = task_commit_message(request.task_id, request.title)
    if await rev(clone, f"{tip}^{{tree}}") == await rev(clone, f"{base}^{{tree}}"):
        # Nothing to land, but a tick of the plan file still is.
        ticked = await _ticked(clone, await rev(clone, f"{exec_head}^{{tree}}"), request)
        if not ticked.ticked:
            return MergeResult(merged=True, head=exec_head, tick_note=ticked.note or None)
        new = await _commit_tree(clone, ticked.tree, exec_head, message)
    elif exec_head == base and await is_task_commit(clone, tip, parent=base, message=message):
        # Nothing landed since the task started: fast-forward to its own commit (a copy of
        # it with the plan file ticked).
        ticked = await _ticked(clone, await rev(clone, f"{tip}^{{tree}}"), request)
        new = await _commit_tree(clone, ticked.tree, base, message) if ticked.ticked else tip
    else:
        merged = await merge_tree(clone, request.execution_branch, request.task_branch)
        if merged.conflicts:
            facts = await conflict_facts(
                clone,
                merged,
                request.task_id,
                request.execution_branch,
                request.task_branch,
                base,
                exec_head,
            )
            return MergeResult(
                merged=False,
                head=exec_head,
                conflict=describe(facts),
                conflict_files=merged.conflict_files,
            )
        ticked = await _ticked(clone, merged.tree, request)
        new = await _commit_tree(clone, ticked.tree, exec_head, message)
    await _advance(clone, request.execution_branch, exec_head, new)
    return MergeResult(
        merged=True, head=new, commit=new, tick_note=ticked.note or None, previous=exec_head
    )


async def already_merged(clone: Path, head: str, landed: str) -> MergeResult:
    """A task whose commit `landed` is on the execution branch (now at `head`) already: an
    earlier try merged it. `previous` is the head that merge moved the branch from."""
    parents, _, _ = commit_fields(clone, landed)
    return MergeResult(
        merged=True,
        head=head,
        already_merged=True,
        commit=landed,
        previous=parents[0] if parents else None,
    )


async def _commit_tree(clone: Path, tree: str, parent: str, message: str) -> str:
    return write_commit(clone, tree, parent, message)


async def _ticked(clone: Path, tree: str, request: MergeRequest) -> Ticked:
    """`tree` with the task ticked in its plan file (when the request carries a tick)."""
    if request.tick is None:
        return Ticked(tree, False, "")
    return await tick_tree(clone, tree, request.tick)


async def _advance(clone: Path, branch: str, old: str, new: str) -> None:
    """Move the execution branch from `old` to `new`, and its checkout in the clone with it.

    `reset --keep` updates only the files the task changed, refuses to overwrite local edits,
    and runs no hooks (a `merge --ff-only` would run post-merge); in-process where that is
    what git would do (activities/git_checkout.py). A small move is made at once, on this
    thread: no other task's step runs in the middle of it while the clone's lock is held,
    and nothing can cancel it half-way. A big one (many files to write) goes to a thread,
    and git, when needed, runs to its end even if the activity is cancelled meanwhile.
    """
    if head_branch(clone) == branch:
        if follow_branch(clone, branch, old, new, at_most=_MOVED_HERE_AT_MOST):
            return
    elif set_ref(clone, f"refs/heads/{branch}", new, old):
        return  # no checkout to follow
    await uninterrupted(_advance_aside(clone, branch, old, new))


async def _advance_aside(clone: Path, branch: str, old: str, new: str) -> None:
    if await current_branch(clone) == branch:
        if not await asyncio.to_thread(follow_branch, clone, branch, old, new):
            await git_waiting("reset", "--quiet", "--keep", new, cwd=clone, timeout=LONG)
    else:
        await update_ref(clone, f"refs/heads/{branch}", new, old)
