"""A task's worktree made by its specialist's activity (activities/worktree_prepare.py): the
specialist works in it at once, a retry keeps what the earlier try did there."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.command_specialist import CommandSpecialistActivities
from activities.worktree_prepare import MADE_BY
from coordinator.branches import CreateWorktreeRequest, worktree_beside
from coordinator.environment import CommandEnvironment
from coordinator.work import SpecialistRequest, SpecialistResult
from tests.activities.worktree_support import BRANCH, EXECUTION, Execution, git


def request(ex: Execution, command: str, *, fresh: bool = False) -> SpecialistRequest:
    return SpecialistRequest(
        execution_id=EXECUTION,
        task_id="t1",
        task_title="t1",
        task_prompt="",
        specialist="shell",
        backend="command",
        command=command,
        timeout_s=60,
        cwd=worktree_beside(ex.workspace.path, "t1"),
        attempt=1,
        environment=CommandEnvironment(confine="off"),
        worktree=CreateWorktreeRequest(
            execution_id=EXECUTION,
            workspace=ex.workspace.path,
            execution_branch=BRANCH,
            task_id="t1",
            attempt=1,
            fresh=fresh,
        ),
    )


async def run(
    acts: CommandSpecialistActivities, req: SpecialistRequest, try_: int = 1
) -> SpecialistResult:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=try_)
    return await env.run(acts.run, req)


async def test_the_specialist_works_in_the_worktree_its_activity_made(
    ex: Execution, tmp_path: Path
) -> None:
    acts = CommandSpecialistActivities(tmp_path / "artifacts", ex.acts)
    result = await run(acts, request(ex, "cat app.py && echo new > new.txt"))

    assert result.ok, result.output_tail
    assert "print('hi')" in result.output_tail
    assert result.worktree is not None
    assert Path(result.worktree.path) == ex.root / EXECUTION / "worktrees" / "t1"
    assert result.worktree.base_commit == ex.head()
    assert git(result.worktree.path, "status", "--porcelain") == "?? new.txt"


async def test_a_retried_activity_keeps_what_the_earlier_try_did(
    ex: Execution, tmp_path: Path
) -> None:
    acts = CommandSpecialistActivities(tmp_path / "artifacts", ex.acts)
    first = await run(acts, request(ex, "echo one > one.txt", fresh=True))
    assert first.ok and first.worktree is not None

    # The same request again, as Temporal retries it: a fresh start is the first try's.
    again = await run(acts, request(ex, "ls", fresh=True), try_=2)
    assert again.ok and "one.txt" in again.output_tail
    # A new attempt that asks for a fresh start (try 1) gets one.
    fresh = await run(acts, request(ex, "echo two > two.txt", fresh=True))
    assert fresh.ok and "one.txt" not in fresh.output_tail


async def test_a_retry_starts_fresh_from_a_worktree_another_activity_made(
    ex: Execution, tmp_path: Path
) -> None:
    """A fresh start whose first try failed before making its worktree: the retry finds
    the earlier attempt's worktree, which this activity did not make, and starts over."""
    acts = CommandSpecialistActivities(tmp_path / "artifacts", ex.acts)
    earlier = await run(acts, request(ex, "echo old > old.txt"))
    assert earlier.worktree is not None
    made_by = Path(git(earlier.worktree.path, "rev-parse", "--absolute-git-dir")) / MADE_BY
    made_by.write_text("an-earlier-run/7")

    retried = await run(acts, request(ex, "ls", fresh=True), try_=2)
    assert retried.ok and "old.txt" not in retried.output_tail


async def test_a_worker_without_worktrees_refuses_to_guess(ex: Execution, tmp_path: Path) -> None:
    acts = CommandSpecialistActivities(tmp_path / "artifacts")
    with pytest.raises(ApplicationError, match="cannot make worktrees") as raised:
        await run(acts, request(ex, "true"))
    assert raised.value.non_retryable
