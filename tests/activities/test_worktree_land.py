"""Landing a task in one activity (activities/worktree_land.py): commit, merge, push, removal,
side by side with other tasks, and retried after a crash at any point."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

import activities.worktree_land as worktree_land
import activities.worktree_spares as worktree_spares
from activities.git import GitError
from coordinator.branches import LandRequest, LandResult
from tests.activities.worktree_support import (
    BRANCH,
    Execution,
    assert_clean,
    git,
    landing,
    run,
    spare_worktrees,
    task_worktrees,
    write,
)


async def land(ex: Execution, request: LandRequest) -> LandResult:
    return await run(ex.acts.land_task, request)


def branches(ex: Execution) -> list[str]:
    return git(ex.clone, "for-each-ref", "--format=%(refname)", "refs/heads/coord-task").split()


async def test_parallel_tasks_land_at_once_as_one_commit_each(
    ex: Execution, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worktree_spares, "MIN_FILES", 0)  # kept as spares, however small
    wts = await asyncio.gather(*(ex.create(f"t{n}") for n in range(4)))
    for n, wt in enumerate(wts):
        write(wt, {f"f{n}.txt": f"{n}\n"})

    results = await asyncio.gather(
        *(land(ex, landing(ex, wt, f"t{n}")) for n, wt in enumerate(wts))
    )

    assert sorted(ex.subjects()) == [f"t{n}: do t{n}" for n in range(4)]
    assert all(r.merged is not None and r.merged.merged and r.removed for r in results)
    assert [r.committed.files_changed for r in results] == [[f"f{n}.txt"] for n in range(4)]
    # The merges took turns: each moved the branch from the head the one before left.
    moves = {r.merged.previous: r.merged.head for r in results if r.merged}
    head = ex.workspace.head_commit
    while head in moves:
        head = moves.pop(head)
    assert head == ex.head() and not moves
    assert not any(Path(wt.path).exists() for wt in wts)
    assert branches(ex) == []
    # git lists the clone and the four kept as spares for the next tasks (detached, locked as
    # spares, activities/worktree_spares.py); nothing to prune.
    assert task_worktrees(ex) == [] and len(spare_worktrees(ex)) == 4
    assert git(ex.clone, "worktree", "prune", "--dry-run", "--verbose") == ""
    trash = ex.clone / ".git" / "coord-trash"
    assert not trash.exists() or list(trash.iterdir()) == []
    assert_clean(ex.clone)


async def test_a_retry_after_everything_was_done_returns_the_same(ex: Execution) -> None:
    wt = await ex.create("t1")
    write(wt, {"a.txt": "a\n"})
    request = landing(ex, wt, "t1")
    first = await land(ex, request)
    assert first.removed and not Path(wt.path).exists()

    assert await land(ex, request) == first
    # Without the note the landing left, the task's commit is found on the branch.
    for note in (ex.clone / ".git" / "coord-landed").iterdir():
        note.unlink()
    again = await land(ex, request)
    assert first.merged is not None and again.merged is not None
    assert again.merged.already_merged and again.merged.commit == first.merged.commit
    assert ex.subjects() == ["t1: do t1"]


@pytest.mark.parametrize("step", ["unregister_worktree", "delete_worktree_folders", "park"])
async def test_a_crash_while_removing_is_finished_by_the_retry(
    ex: Execution, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """Merged and published, then cut short while the worktree goes (before or after its
    registration, or while it is kept as a spare): the retry finishes the removal and
    returns what the landing was."""
    monkeypatch.setattr(worktree_spares, "MIN_FILES", 0)
    if step != "park":
        monkeypatch.setattr(worktree_spares, "MAX_SPARES", 0)  # removed, not kept
    wt = await ex.create("t1")
    write(wt, {"a.txt": "a\n"})
    request = landing(ex, wt, "t1")

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("worker died")

    with monkeypatch.context() as patch:
        patch.setattr(worktree_land, step, crash)
        with pytest.raises(RuntimeError, match="worker died"):
            await land(ex, request)
    assert ex.subjects() == ["t1: do t1"] and Path(wt.path).exists()

    retried = await land(ex, request)
    assert retried.merged is not None and retried.merged.merged and retried.removed
    assert retried.merged.commit == ex.head()
    assert ex.subjects() == ["t1: do t1"]
    assert not Path(wt.path).exists() and branches(ex) == []
    assert task_worktrees(ex) == []
    assert len(spare_worktrees(ex)) == (1 if step == "park" else 0)


async def test_a_retry_without_the_note_finds_the_commit_merged(ex: Execution) -> None:
    """No note (an earlier version's try, or it was lost): the worktree and branch are
    gone, the task's commit is on the branch, and where it was put is known too."""
    wt = await ex.create("t1")
    write(wt, {"a.txt": "a\n"})
    request = landing(ex, wt, "t1")
    first = await land(ex, request)
    for note in (ex.clone / ".git" / "coord-landed").iterdir():
        note.unlink()
    again = await land(ex, request)
    assert first.merged is not None and again.merged is not None
    assert again.merged.already_merged and again.merged.commit == first.merged.commit
    assert again.merged.previous == first.merged.previous == ex.workspace.head_commit


async def test_a_conflict_keeps_the_worktree_for_the_fixer(ex: Execution) -> None:
    wt1, wt2 = await asyncio.gather(ex.create("t1"), ex.create("t2"))
    write(wt1, {"shared.txt": "one\nTWO from t1\nthree\n"})
    write(wt2, {"shared.txt": "one\ntwo from t2\nthree\n"})
    assert (await land(ex, landing(ex, wt1, "t1"))).removed

    result = await land(ex, landing(ex, wt2, "t2"))

    assert result.merged is not None and not result.merged.merged
    assert result.merged.conflict_files == ["shared.txt"] and not result.removed
    assert result.committed.commit == git(wt2.path, "rev-parse", "HEAD")
    assert Path(wt2.path).exists() and ex.subjects() == ["t1: do t1"]


async def test_the_branch_is_pushed_to_its_home(ex: Execution, tmp_path: Path) -> None:
    home = tmp_path / "home.git"
    subprocess.run(["git", "init", "-q", "--bare", str(home)], check=True)
    wt = await ex.create("t1")
    write(wt, {"a.txt": "a\n"})

    result = await land(ex, landing(ex, wt, "t1", home=str(home)))

    assert result.merged is not None and result.published == result.merged.head == ex.head()
    assert git(home, "rev-parse", BRANCH) == ex.head()


async def test_a_worktree_git_cannot_remove_is_left_for_the_sweep(
    ex: Execution, monkeypatch: pytest.MonkeyPatch
) -> None:
    wt = await ex.create("t1")
    write(wt, {"a.txt": "a\n"})

    async def refuse(*args: object, **kwargs: object) -> None:
        raise GitError(["update-ref", "-d"], ex.clone, 1, "busy")

    monkeypatch.setattr(worktree_land, "delete_ref_names", refuse)
    result = await land(ex, landing(ex, wt, "t1"))

    assert result.merged is not None and result.merged.merged and not result.removed
    assert ex.subjects() == ["t1: do t1"]


async def test_a_push_that_failed_after_the_merge_is_done_by_the_retry(
    ex: Execution, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Merged (and off git's lists), then the push to the home failed: the retry pushes,
    from the note the merge left, without merging again."""
    home = tmp_path / "home.git"
    subprocess.run(["git", "init", "-q", "--bare", str(home)], check=True)
    wt = await ex.create("t1")
    write(wt, {"a.txt": "a\n"})
    request = landing(ex, wt, "t1", home=str(home))

    async def unreachable(*args: object, **kwargs: object) -> str:
        raise GitError(["push"], ex.clone, 128, "the home is unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(worktree_land, "publish_commit", unreachable)
        with pytest.raises(ApplicationError, match="unreachable"):
            await land(ex, request)
    assert ex.subjects() == ["t1: do t1"] and branches(ex) == []

    retried = await land(ex, request)
    assert retried.merged is not None and retried.published == retried.merged.head == ex.head()
    assert git(home, "rev-parse", BRANCH) == ex.head() and retried.removed
    assert ex.subjects() == ["t1: do t1"] and not Path(wt.path).exists()


async def test_a_file_name_that_is_not_utf8_lands_and_is_shown_escaped(ex: Execution) -> None:
    """A name git takes (any bytes but / and NUL) lands like any other; the result, which
    travels as JSON, shows its other bytes escaped."""
    wt = await ex.create("t1")
    with open(os.path.join(os.fsencode(wt.path), b"caf\xe9.txt"), "wb") as f:
        f.write(b"coffee\n")
    result = await land(ex, landing(ex, wt, "t1"))
    assert result.merged is not None and result.merged.merged
    assert result.committed.files_changed == ["caf\\xe9.txt"]
    listed = subprocess.run(
        ["git", "ls-tree", "-z", "--name-only", "HEAD"], cwd=ex.clone, capture_output=True
    ).stdout
    assert b"caf\xe9.txt" in listed.split(b"\0")
    result.model_dump_json()  # as it travels
