"""A task's turn in one activity: the worktree made first (activities/worktree_prepare.py),
the specialist, then, when the request says so (`SpecialistRequest.then`), the task's gates and
its landing (activities/worktree_land.py). Each of those was a round trip through the server
and a workflow task of its own; in the usual case (the turn passes), a task is one activity.

The steps after the specialist are a shortcut, never the only way: should one of them fail
(an error, not a failing gate), the result says what was done (`gates`, `landed`) and the
workflow does the rest with its own activities, as it did before. Failing gates are a result
like any other: the fix loop gets them.

A retry of the activity never runs the specialist again once it has finished: each stage is
written down in the task's artifacts (a small JSON file per activity, `turn-*.json`) before
the next starts, and a retry carries on from the last one written. The landing is itself safe
to do again (activities/worktree_land.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError
from temporalio import activity

from activities.gates import GateActivities
from activities.named_pipes import sweep_named_pipes
from activities.process import safe_name
from activities.worktree_land import landed_since
from activities.worktree_prepare import prepare_worktree, with_worktree
from activities.worktrees import WorktreeActivities
from coordinator.branches import LandRequest, LandResult, TaskWorktree
from coordinator.plan import Gate
from coordinator.work import FollowThrough, GateRequest, SpecialistRequest, SpecialistResult

Specialist = Callable[[SpecialistRequest], Awaitable[SpecialistResult]]
Stage = Literal["specialist", "gates", "landed"]


class _Record(BaseModel):
    """How far this activity got: the result so far, after `stage`."""

    stage: Stage
    result: SpecialistResult


def task_dir(artifacts_root: Path, request: SpecialistRequest) -> Path:
    """`<artifacts>/<execution>/tasks/<task>`: a task's logs, transcripts and turn records."""
    return artifacts_root / safe_name(request.execution_id) / "tasks" / safe_name(request.task_id)


class SpecialistActivities:
    """What the specialists' activity classes share: the artifacts root, the worktrees their
    activity makes when asked (activities/worktree_prepare.py) and the turn around their own
    `_run` (`take_turn`)."""

    def __init__(self, artifacts_root: Path, worktrees: WorktreeActivities | None = None) -> None:
        self.artifacts_root = artifacts_root
        self.worktrees = worktrees  # to make a task's worktree first, when asked

    def task_dir(self, request: SpecialistRequest) -> Path:
        return task_dir(self.artifacts_root, request)

    async def turn(self, request: SpecialistRequest, specialist: Specialist) -> SpecialistResult:
        """The specialist in the task's worktree (made first when the request asks), then
        its gates and its landing when the request asks."""
        return await take_turn(self.worktrees, self.artifacts_root, request, specialist)


async def take_turn(
    worktrees: WorktreeActivities | None,
    artifacts_root: Path,
    request: SpecialistRequest,
    specialist: Specialist,
) -> SpecialistResult:
    """The specialist in the task's worktree (made first when the request asks), then what
    `request.then` asks, carrying on from what an earlier try of this activity did."""
    then = request.then
    record = _record_path(artifacts_root, request) if then is not None else None
    earlier = _read(record) if record is not None else None
    if earlier is None and then is not None and (landed := await _landed_elsewhere(then)):
        return _already_landed(request, then, landed)
    if earlier is None:
        made = await prepare_worktree(worktrees, request)
        try:
            result = with_worktree(await specialist(request), made)
        finally:
            if request.backend != "command":  # a command's own runner did it already
                await sweep_named_pipes(Path(request.cwd), f"specialist {request.specialist!r}")
        if then is None or record is None or not _passed(result):
            return result
        if not _write(record, "specialist", result):
            return result  # a retry could not tell: the workflow runs the rest
        stage: Stage = "specialist"
    else:
        stage, result = earlier.stage, earlier.result
    if stage == "landed":
        return result
    assert then is not None and record is not None
    return await _follow_through(worktrees, artifacts_root, request, then, result, record, stage)


async def _landed_elsewhere(then: FollowThrough) -> LandResult | None:
    """After a move: the task's commit, if it landed on the lost host (and reached the home
    this clone came from) before that host could report it; None: it did not."""
    merge = then.merge
    if not then.moved or merge is None or merge.since is None:
        return None
    return await landed_since(
        Path(merge.workspace), merge.execution_branch, merge.since, merge.task_id
    )


def _already_landed(
    request: SpecialistRequest, then: FollowThrough, landed: LandResult
) -> SpecialistResult:
    """The turn as the lost host would have reported it (its worktree is gone with it)."""
    assert then.merge is not None and landed.merged is not None
    base = landed.merged.previous or then.merge.since or ""
    gone = TaskWorktree(path=request.cwd, branch=then.merge.task_branch, base_commit=base)
    return SpecialistResult(
        task_id=request.task_id,
        specialist=request.specialist,
        attempt=request.attempt,
        ok=True,
        summary="landed on the host that was lost, before it could say so",
        exit_code=0,
        timed_out=False,
        duration_s=0.0,
        output_tail="",
        log_path="",
        worktree=gone,
        gates=[],
        landed=landed,
    )


def _passed(result: SpecialistResult) -> bool:
    """A turn that goes on to the gates: done, and not stopped by its budget."""
    return result.ok and not (result.agent is not None and result.agent.stop_reason == "budget")


async def _follow_through(
    worktrees: WorktreeActivities | None,
    artifacts_root: Path,
    request: SpecialistRequest,
    then: FollowThrough,
    result: SpecialistResult,
    record: Path,
    stage: Stage,
) -> SpecialistResult:
    """The gates, then the landing; on an error, what was done so far (the workflow does
    the rest). Cancellation goes through."""
    try:
        if stage == "specialist":
            gates = GateActivities(artifacts_root)
            results = [await gates.run_gate(_gate(request, g)) for g in then.gates]
            result = result.model_copy(update={"gates": results})
            if not _write(record, "gates", result):
                return result
        assert result.gates is not None
        if then.merge is None or worktrees is None or not all(g.passed for g in result.gates):
            return result
        landed = await worktrees.land_task(_landing(request, then, result))
    except Exception as err:
        activity.logger.warning(
            "task %s: the steps after its turn stopped (%s); the workflow takes them over",
            request.task_id,
            err,
        )
        return result
    result = result.model_copy(update={"landed": landed})
    _write(record, "landed", result)
    return result


def _gate(request: SpecialistRequest, gate: Gate) -> GateRequest:
    """The request the workflow would send for this gate (the same log file and slot)."""
    return GateRequest(
        execution_id=request.execution_id,
        level="task",
        scope=request.task_id,
        gate=gate,
        cwd=request.cwd,
        attempt=request.attempt,
        environment=request.environment,
    )


def _landing(
    request: SpecialistRequest, then: FollowThrough, result: SpecialistResult
) -> LandRequest:
    assert then.merge is not None
    base = then.base_commit or (result.worktree.base_commit if result.worktree else None)
    if base is None:
        raise ValueError("the worktree's base commit is not known")
    return LandRequest(
        worktree=request.cwd,
        attempt=request.attempt,
        base_commit=base,
        merge=then.merge,
        home=then.home,
        execution_id=request.execution_id,
    )


# --- the record of how far the activity got -----------------------------------------------------


def _record_path(artifacts_root: Path, request: SpecialistRequest) -> Path:
    """`<artifacts>/<execution>/tasks/<task>/turn-<attempt>-<activity>.json`: one per
    activity (its workflow run and id), which its retries share."""
    info = activity.info()
    key = hashlib.sha256(f"{info.workflow_run_id}/{info.activity_id}".encode()).hexdigest()
    return task_dir(artifacts_root, request) / f"turn-{request.attempt}-{key[:16]}.json"


def _read(path: Path) -> _Record | None:
    with suppress(OSError, ValidationError):
        return _Record.model_validate_json(path.read_text())
    return None


def _write(path: Path, stage: Stage, result: SpecialistResult) -> bool:
    """Written whole or not at all (a crash mid-write leaves the earlier stage); False (and
    logged) when it cannot be written: then nothing more is done in this activity."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(_Record(stage=stage, result=result).model_dump_json())
        partial.replace(path)
    except OSError as err:
        activity.logger.warning("cannot write down how far the turn got in %s: %s", path, err)
        return False
    return True
