"""A task's turn in one activity (activities/task_turn.py): the specialist, then its gates and
its landing; a retry carries on where the earlier try stopped and never runs the specialist
again; a step that fails leaves the rest to the workflow."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import activities.task_turn as task_turn
from activities.command_specialist import CommandSpecialistActivities
from coordinator.plan import Gate
from coordinator.work import FollowThrough, SpecialistRequest, SpecialistResult
from tests.activities.test_worktree_prepare import request as first_attempt
from tests.activities.worktree_support import (
    BRANCH,
    EXECUTION,
    Execution,
    git,
    merge_request,
    title,
)


def turn(ex: Execution, command: str, gates: list[str], *, land: bool = True) -> SpecialistRequest:
    """Task t1's first attempt: its worktree made by the activity, then `gates`, then (with
    `land`) its landing."""
    merge = merge_request(ex, "t1")
    then = FollowThrough(
        gates=[Gate(name=f"g{n}", run=run) for n, run in enumerate(gates)],
        merge=merge if land else None,
    )
    return first_attempt(ex, command, fresh=True).model_copy(update={"then": then})


async def run(
    acts: CommandSpecialistActivities,
    request: SpecialistRequest,
    try_: int = 1,
    activity: str = "1",
) -> SpecialistResult:
    """One try of the activity `activity`; its tries share the workflow run and its id."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=try_, activity_id=activity)
    return await env.run(acts.run, request)


def logs(tmp_path: Path) -> list[str]:
    """The specialist's log files (one per run of it): attempt-1.log, attempt-1.try2.log..."""
    folder = tmp_path / "artifacts" / EXECUTION / "tasks" / "t1"
    return sorted(p.name for p in folder.glob("attempt-*.log"))


@pytest.fixture
def acts(ex: Execution, tmp_path: Path) -> CommandSpecialistActivities:
    return CommandSpecialistActivities(tmp_path / "artifacts", ex.acts)


async def test_a_turn_that_passes_its_gates_lands_in_the_same_activity(
    ex: Execution, acts: CommandSpecialistActivities
) -> None:
    before = ex.head()
    result = await run(acts, turn(ex, "echo new > new.txt", ["test -f new.txt", "true"]))

    assert result.ok, result.output_tail
    assert [(g.name, g.level, g.scope, g.passed) for g in result.gates or []] == [
        ("g0", "task", "t1", True),
        ("g1", "task", "t1", True),
    ]
    landed = result.landed
    assert landed is not None and landed.merged is not None and landed.removed
    assert landed.merged.previous == before and landed.merged.commit == ex.head()
    assert ex.subjects() == [f"t1: {title('t1')}"]
    assert git(ex.clone, "show", f"{BRANCH}:new.txt") == "new"
    assert not Path(result.worktree.path if result.worktree else "").exists()
    # The gate logs are where the workflow's own gate step writes them.
    assert all(Path(g.log_path).name == f"task-t1-{g.name}-1.log" for g in result.gates or [])


async def test_a_failing_gate_stops_the_turn_before_the_landing(
    ex: Execution, acts: CommandSpecialistActivities
) -> None:
    before = ex.head()
    result = await run(acts, turn(ex, "echo new > new.txt", ["false", "echo second"]))

    assert result.ok  # the specialist did its part: the fix loop takes the gates' output
    assert [g.passed for g in result.gates or []] == [False, True]  # every gate ran
    assert result.landed is None and ex.head() == before
    assert result.worktree is not None
    assert git(result.worktree.path, "status", "--porcelain") == "?? new.txt"


async def test_a_failed_turn_runs_no_gate(ex: Execution, acts: CommandSpecialistActivities) -> None:
    result = await run(acts, turn(ex, "exit 3", ["true"]))
    assert not result.ok and result.gates is None and result.landed is None


async def test_without_a_merge_the_gates_run_and_the_workflow_lands(
    ex: Execution, acts: CommandSpecialistActivities
) -> None:
    before = ex.head()
    result = await run(acts, turn(ex, "echo new > new.txt", ["true"], land=False))
    assert [g.passed for g in result.gates or []] == [True]
    assert result.landed is None and ex.head() == before


class Crash(BaseException):
    """The worker dying mid-activity, as far as this try is concerned."""


async def test_a_retry_after_the_specialist_finished_does_not_run_it_again(
    ex: Execution, acts: CommandSpecialistActivities, tmp_path: Path, monkeypatch: Any
) -> None:
    follow = task_turn._follow_through

    async def crash(*args: Any, **kwargs: Any) -> SpecialistResult:
        raise Crash

    monkeypatch.setattr(task_turn, "_follow_through", crash)
    request = turn(ex, "echo new > new.txt", ["true"])
    with pytest.raises(Crash):
        await run(acts, request)
    monkeypatch.setattr(task_turn, "_follow_through", follow)

    result = await run(acts, request, try_=2)
    assert result.ok and result.landed is not None and result.landed.removed
    assert logs(tmp_path) == ["attempt-1.log"]  # the specialist ran once
    assert ex.subjects() == [f"t1: {title('t1')}"]

    # Once landed, a further retry returns what was done, and does nothing again.
    again = await run(acts, request, try_=3)
    assert again == result and ex.subjects() == [f"t1: {title('t1')}"]


async def test_a_retry_after_the_gates_passed_goes_on_to_land(
    ex: Execution, acts: CommandSpecialistActivities, tmp_path: Path, monkeypatch: Any
) -> None:
    async def crash(*args: Any, **kwargs: Any) -> Any:
        raise Crash

    monkeypatch.setattr(ex.acts, "land_task", crash)
    request = turn(ex, "echo new > new.txt", ["echo gate ran >> ../gate-runs.txt"])
    with pytest.raises(Crash):
        await run(acts, request)
    monkeypatch.undo()

    result = await run(acts, request, try_=2)
    assert result.landed is not None and result.landed.removed
    assert [g.passed for g in result.gates or []] == [True]
    assert logs(tmp_path) == ["attempt-1.log"]
    gate_runs = ex.root / EXECUTION / "worktrees" / "gate-runs.txt"
    assert gate_runs.read_text().splitlines() == ["gate ran"]  # not run again either


async def test_a_landing_that_fails_leaves_it_to_the_workflow(
    ex: Execution, acts: CommandSpecialistActivities, monkeypatch: Any
) -> None:
    async def refused(*args: Any, **kwargs: Any) -> Any:
        raise ApplicationError("the clone is busy", type="GitError")

    monkeypatch.setattr(ex.acts, "land_task", refused)
    before = ex.head()
    result = await run(acts, turn(ex, "echo new > new.txt", ["true"]))

    assert result.ok and [g.passed for g in result.gates or []] == [True]
    assert result.landed is None and ex.head() == before  # the workflow lands it
    assert result.worktree is not None and Path(result.worktree.path).is_dir()


async def test_after_a_move_a_turn_that_landed_on_the_lost_host_is_not_run_again(
    ex: Execution, acts: CommandSpecialistActivities, tmp_path: Path
) -> None:
    """Its host landed it (and pushed it to the home this clone came from), then died before
    reporting: the turn on the new host finds the commit and reports it, running nothing."""
    landed_there = await run(acts, turn(ex, "echo new > new.txt", ["true"]))
    assert landed_there.landed is not None and landed_there.landed.merged is not None
    request = turn(ex, "echo again > again.txt", ["true"])
    assert request.then is not None and request.then.merge is not None
    since = request.then.merge.model_copy(update={"since": ex.workspace.base_commit})
    moved = request.then.model_copy(update={"merge": since, "moved": True})
    logs_before = logs(tmp_path)

    result = await run(acts, request.model_copy(update={"then": moved}), activity="2")

    assert result.ok and result.landed is not None and result.landed.merged is not None
    assert result.landed.merged.already_merged
    assert result.landed.merged.commit == landed_there.landed.merged.commit
    assert logs(tmp_path) == logs_before  # the specialist did not run
    assert ex.subjects() == [f"t1: {title('t1')}"]
    assert result.worktree is not None and not Path(result.worktree.path).exists()


async def test_after_a_move_a_turn_that_never_landed_runs(
    ex: Execution, acts: CommandSpecialistActivities
) -> None:
    request = turn(ex, "echo new > new.txt", ["true"])
    assert request.then is not None and request.then.merge is not None
    since = request.then.merge.model_copy(update={"since": ex.workspace.base_commit})
    moved = request.then.model_copy(update={"merge": since, "moved": True})
    result = await run(acts, request.model_copy(update={"then": moved}))
    assert result.landed is not None and result.landed.merged is not None
    assert not result.landed.merged.already_merged and ex.subjects() == [f"t1: {title('t1')}"]
