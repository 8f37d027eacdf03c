"""Landing a task in one activity: commit, merge, publish, remove.

These were four activities, each a round trip through the server and a workflow task; as one,
a task costs its workflow a third of the events and waits. Each step is the same code as the
separate activities (activities/worktree_commit.py, activities/worktree_merge.py,
activities/home.py, activities/worktree_git.py), and the whole can be retried after a crash
at any point:

- before the merge: the commit is found or made again, the merge happens once;
- after the merge: what the landing returns is written down at once (a small file in the
  clone's git folder, for this attempt on this base) and a retry finishes from it: the push
  and the removal are done again;
- without that note (an earlier version's try): if the worktree and the task branch are
  gone, the task's commit is looked up on the execution branch from the worktree's base.

Only the merge holds the clone's lock, and in the same turn the worktree and its branch go
off git's lists (a turn of their own would wait behind the other tasks' merges): the commit
works in the task's own worktree, the push tolerates a later head, the folders go after. A
worktree that cannot be removed is not a failure: the task has landed, and the end of the
phase sweeps what is left (`removed` says which).
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

from pydantic import BaseModel, ValidationError
from temporalio import activity

from activities.git import GitError, common_dir, repo_lock
from activities.git_objects import resolve
from activities.home import publish_commit
from activities.worktree_commit import commit_worktree
from activities.worktree_git import (
    delete_ref_names,
    delete_worktree_folders,
    find_task_commit,
    ref_exists,
    rev,
    unregister_worktree,
)
from activities.worktree_merge import already_merged, merge
from activities.worktree_spares import park
from coordinator.branches import (
    CommitRequest,
    CommitResult,
    LandRequest,
    LandResult,
    base_ref,
    is_fix,
)


async def land(clone: Path, request: LandRequest, removing: Path) -> LandResult:
    """`removing`: the worktree's folder as the worker places it (never outside its root)."""
    m = request.merge
    wt = Path(request.worktree)
    keep = not is_fix(m.task_id)  # a task's worktree, kept as a spare where it can be
    if (noted := _noted(clone, request)) is not None:
        # An earlier try merged it, and was cut short before it was published or removed.
        async with repo_lock(clone):
            unregistered = await _unregister(clone, removing, m.task_branch, keep=keep)
        return await _finish(clone, request, noted, removing, unregistered)
    gone = not wt.exists() and not await ref_exists(clone, f"refs/heads/{m.task_branch}")
    if gone and (found := await _found_on_branch(clone, request)) is not None:
        return found
    committed = await commit_worktree(
        wt,
        CommitRequest(
            worktree=request.worktree, task_id=m.task_id, title=m.title, attempt=request.attempt
        ),
    )
    if committed.unresolved or committed.nested:
        return LandResult(committed=committed)
    async with repo_lock(clone):
        merged = await merge(clone, m)
        if not merged.merged:
            return LandResult(committed=committed, merged=merged)
        # Merged: whatever happens next, a retry finishes from here. The worktree goes off
        # git's list under the same turn of the lock (another turn would wait for merges).
        result = LandResult(committed=committed, merged=merged, removed=True)
        _note(clone, request).write_text(_Landed(request=request, result=result).model_dump_json())
        unregistered = await _unregister(clone, removing, m.task_branch, keep=keep)
    return await _finish(clone, request, result, removing, unregistered)


async def _finish(
    clone: Path,
    request: LandRequest,
    result: LandResult,
    removing: Path,
    unregistered: tuple[bool, Path | None],
) -> LandResult:
    """After the merge: the push to the home (before the task counts as done, its commit
    survives the loss of this host), then the worktree's folders, off git's list already."""
    m = request.merge
    if request.home is not None and result.merged is not None:
        published = await publish_commit(
            clone, m.execution_branch, request.home, result.merged.head
        )
        result = result.model_copy(update={"published": published})
    removed, trash = unregistered
    if removed:
        try:
            await delete_worktree_folders(removing, trash)
        except OSError as err:
            activity.logger.warning(
                "the landed worktree %s stays until the sweep: %s", removing, err
            )
            removed = False
    return result.model_copy(update={"removed": removed})


class _Landed(BaseModel):
    """What a landing returned, for a retry that finds the worktree gone."""

    request: LandRequest
    result: LandResult


def _note(clone: Path, request: LandRequest) -> Path:
    folder = common_dir(clone) / "coord-landed"
    folder.mkdir(exist_ok=True)
    return folder / (request.merge.task_branch.replace("/", "%") + ".json")


def _noted(clone: Path, request: LandRequest) -> LandResult | None:
    """What an earlier try of this very landing returned (written once it had merged and
    published, before the removal), if one got that far."""
    with suppress(OSError, ValidationError):
        noted = _Landed.model_validate_json(_note(clone, request).read_text())
        if noted.request == request:
            return noted.result
    return None


async def _found_on_branch(clone: Path, request: LandRequest) -> LandResult | None:
    """The task's worktree and branch are gone and no note says why: its commit, if it is
    on the execution branch since the worktree's base (None: the commit step says what is
    missing)."""
    m = request.merge
    found = await landed_since(clone, m.execution_branch, request.base_commit, m.task_id)
    if found is None or request.home is None or found.merged is None:
        return found
    published = await publish_commit(clone, m.execution_branch, request.home, found.merged.head)
    return found.model_copy(update={"published": published})


async def landed_since(clone: Path, branch: str, since: str, task_id: str) -> LandResult | None:
    """The landing of `task_id` whose commit is on `branch` since `since`, as a landing that
    finds it there reports it (nothing of it left to remove); None: it is not there."""
    head = await rev(clone, f"refs/heads/{branch}")
    landed = await find_task_commit(clone, since, head, task_id)
    if landed is None:
        return None
    return LandResult(
        committed=CommitResult(commit=landed),
        merged=await already_merged(clone, head, landed),
        removed=True,
    )


async def _unregister(
    clone: Path, wt: Path, branch: str, *, keep: bool
) -> tuple[bool, Path | None]:
    """The worktree and its branch off git's lists, with the clone's lock held by the caller:
    (done, the registration's trash folder for `delete_worktree_folders`); not done (logged)
    when that failed: swept later (the branch first, so that a worktree git still lists is
    one the sweep finds). Fine to do again. With `keep`, the worktree is kept as a spare for
    the next task where it can be (activities/worktree_spares.py): nothing is left to delete
    then."""
    try:
        await delete_ref_names(clone, f"refs/heads/{branch}", base_ref(branch))
        # A spare's HEAD is detached at any commit there is: the clone's own.
        if keep and (commit := resolve(clone, "HEAD")) is not None and park(clone, wt, commit):
            return True, None
        return True, unregister_worktree(clone, wt)
    except (GitError, OSError) as err:
        activity.logger.warning("the landed worktree %s stays until the sweep: %s", wt, err)
        return False, None
