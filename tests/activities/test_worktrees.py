"""Task worktrees, commits and merges on real git: parallel tasks, conflicts, retries, crashes."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

import activities.worktree_merge as worktree_merge
import activities.worktrees as worktrees_module
from activities.git import remove_stale_lock
from activities.worktree_add import register_worktree
from activities.worktree_git import clip_stat
from activities.worktrees import WorktreeActivities
from coordinator.branches import (
    CommitResult,
    DiffRequest,
    MergeRequest,
    PendingWorkRequest,
    RemoveWorktreeRequest,
    TaskWorktree,
    base_ref,
    task_branch,
)
from tests.activities.worktree_support import (
    BRANCH,
    EXECUTION,
    Execution,
    assert_clean,
    git,
    run,
    write,
)


async def test_parallel_tasks_each_land_as_one_commit(ex: Execution) -> None:
    wt1, wt2 = await asyncio.gather(ex.create("t1"), ex.create("t2"))
    assert Path(wt1.path) == ex.root / EXECUTION / "worktrees" / "t1"
    assert (wt1.branch, wt2.branch) == ("coord-task/e1/t1", "coord-task/e1/t2")
    assert wt1.base_commit == wt2.base_commit == ex.workspace.head_commit
    write(wt1, {"one.txt": "1\n"})
    write(wt2, {"two/two.txt": "2\n", "app.py": "print('bye')\n"})
    c1, c2 = await asyncio.gather(ex.commit(wt1, "t1"), ex.commit(wt2, "t2"))
    assert c1.files_changed == ["one.txt"]
    assert sorted(c2.files_changed) == ["app.py", "two/two.txt"]

    # Merged at once: the lock on the clone serialises them.
    m1, m2 = await asyncio.gather(ex.merge("t1"), ex.merge("t2"))

    assert m1.merged and m2.merged
    assert sorted(ex.subjects()) == ["t1: do t1", "t2: do t2"]
    assert ex.head() in (m1.head, m2.head)
    assert git(ex.clone, "rev-list", "--merges", f"{ex.workspace.base_commit}..") == ""
    trailers = git(ex.clone, "log", "--format=%(trailers:key=Coord-Task,valueonly)", "-2")
    assert sorted(trailers.split()) == ["t1", "t2"]
    # The clone's checkout follows the branch.
    assert (ex.clone / "one.txt").read_text() == "1\n"
    assert (ex.clone / "two" / "two.txt").read_text() == "2\n"
    assert_clean(ex.clone)


async def test_dependant_task_starts_from_its_dependency_merged_work(ex: Execution) -> None:
    first = await ex.land("schema", {"schema.sql": "create table t;\n"})
    wt = await ex.create("api")
    assert wt.base_commit == first.head == ex.head()
    assert (Path(wt.path) / "schema.sql").read_text() == "create table t;\n"


async def test_conflict_is_a_result_and_the_fixer_resolves_it_in_place(ex: Execution) -> None:
    wt1, wt2 = await asyncio.gather(ex.create("t1"), ex.create("t2"))
    write(wt1, {"shared.txt": "one\nTWO from t1\nthree\n"})
    write(wt2, {"shared.txt": "one\ntwo from t2\nthree\n", "extra.txt": "x\n"})
    await ex.commit(wt1, "t1")
    task_commit = (await ex.commit(wt2, "t2")).commit
    assert (await ex.merge("t1")).merged
    before = ex.head()

    result = await ex.merge("t2")

    assert not result.merged and not result.already_merged
    assert result.head == before == ex.head()
    assert result.conflict_files == ["shared.txt"]
    assert result.conflict is not None and "shared.txt" in result.conflict
    assert "CONFLICT (content)" in result.conflict
    assert ex.subjects() == ["t1: do t1"]
    assert_clean(ex.clone)
    assert_clean(wt2.path)  # the task's worktree is left as it was
    assert git(wt2.path, "rev-parse", "HEAD") == task_commit

    # Attempt 2 (the fixer): the task is replayed onto the execution head, markers and all.
    fix = await ex.create("t2", attempt=2)
    assert fix.replayed and fix.conflict_files == ["shared.txt"]
    assert fix.base_commit == before == git(fix.path, "rev-parse", "HEAD")
    text = (Path(fix.path) / "shared.txt").read_text()
    assert "<<<<<<< coord/e1" in text and "TWO from t1" in text and "two from t2" in text
    assert (Path(fix.path) / "extra.txt").read_text() == "x\n"
    # A retry of that step (crash before it returned) changes nothing.
    assert await ex.create("t2", attempt=2) == fix
    assert (Path(fix.path) / "shared.txt").read_text() == text

    write(fix, {"shared.txt": "one\nTWO from t1 and t2\nthree\n"})
    committed = await ex.commit(fix, "t2", attempt=2)
    assert sorted(committed.files_changed) == ["extra.txt", "shared.txt"]
    assert (await ex.merge("t2")).merged
    assert ex.subjects() == ["t1: do t1", "t2: do t2"]
    assert (ex.clone / "shared.txt").read_text() == "one\nTWO from t1 and t2\nthree\n"
    assert_clean(ex.clone)


async def test_replay_cut_short_by_a_crash_is_redone_cleanly(
    ex: Execution, monkeypatch: pytest.MonkeyPatch
) -> None:
    wt1, wt2 = await asyncio.gather(ex.create("t1"), ex.create("t2"))
    write(wt1, {"shared.txt": "one\nTWO from t1\nthree\n"})
    write(wt2, {"shared.txt": "one\ntwo from t2\nthree\n"})
    await ex.commit(wt1, "t1")
    await ex.commit(wt2, "t2")
    await ex.merge("t1")
    assert not (await ex.merge("t2")).merged

    async def crash(*args: object) -> None:
        raise RuntimeError("worker died")

    with monkeypatch.context() as patch:  # dies after the snapshot, before the worktree moved
        patch.setattr(worktrees_module, "merge_tree", crash)
        with pytest.raises(RuntimeError):
            await ex.create("t2", attempt=2)

    fix = await ex.create("t2", attempt=2)
    assert fix.replayed and fix.conflict_files == ["shared.txt"]
    text = (Path(fix.path) / "shared.txt").read_text()
    assert text.count("<<<<<<<") == 1 and "two from t2" in text


async def conflicted(ex: Execution) -> TaskWorktree:
    """t1 and t2 change the same line; t1 lands, t2 conflicts and is replayed (attempt 2)."""
    wt1, wt2 = await asyncio.gather(ex.create("t1"), ex.create("t2"))
    write(wt1, {"shared.txt": "one\nTWO from t1\nthree\n"})
    write(wt2, {"shared.txt": "one\ntwo from t2\nthree\n"})
    await ex.commit(wt1, "t1")
    await ex.commit(wt2, "t2")
    assert (await ex.merge("t1")).merged
    assert not (await ex.merge("t2")).merged
    return await ex.create("t2", attempt=2)


async def test_conflict_names_the_other_task_the_file_and_both_sides(ex: Execution) -> None:
    wt1, wt2 = await asyncio.gather(ex.create("t1"), ex.create("t2"))
    write(wt1, {"shared.txt": "one\nTWO from t1\nthree\n"})
    write(wt2, {"shared.txt": "one\ntwo from t2\nthree\n"})
    await ex.commit(wt1, "t1")
    await ex.commit(wt2, "t2")
    await ex.land("t0", {"unrelated.txt": "x\n"})  # landed meanwhile, elsewhere: not named
    assert (await ex.merge("t1")).merged

    result = await ex.merge("t2")

    assert result.conflict is not None
    summary, _, rest = result.conflict.partition("\n")
    assert "task t2 conflicts with task t1 in shared.txt" in summary
    assert "t0" not in result.conflict
    for side in ("<<<<<<< coord/e1", "TWO from t1", "=======", "two from t2"):
        assert side in rest
    assert ">>>>>>> coord-task/e1/t2" in rest
    # The fixer's worktree says the same of the conflict it holds.
    fix = await ex.create("t2", attempt=2)
    assert fix.conflict is not None and fix.conflict.startswith(summary.split(" (")[0])
    assert "TWO from t1" in fix.conflict and "two from t2" in fix.conflict


async def test_a_commit_is_refused_while_conflict_markers_are_left(ex: Execution) -> None:
    fix = await conflicted(ex)
    before = git(fix.path, "rev-parse", "HEAD")
    text = (Path(fix.path) / "shared.txt").read_text()
    write(fix, {"extra.txt": "more work\n"})  # a fixer that exits 0, markers untouched

    refused = await ex.commit(fix, "t2", attempt=2)

    assert refused.commit is None and not refused.no_changes
    assert refused.unresolved == {"shared.txt": [2, 4, 6]}
    assert refused.conflicting_with == ["task t1"]
    assert git(fix.path, "rev-parse", "HEAD") == before  # nothing committed
    # A worker restarted (new activities, same disk), the next attempt on the same worktree:
    # the record holds although git no longer knows of the conflict.
    assert git(fix.path, "ls-files", "--unmerged") == ""
    ex.acts = WorktreeActivities(ex.root)
    again = await ex.create("t2", attempt=3)
    assert not again.replayed and (Path(again.path) / "shared.txt").read_text() == text
    lone = text.replace("=======\n", "").replace(">>>>>>> coord-task/e1/t2\n", "")
    write(again, {"shared.txt": lone})  # half resolved: one marker is still one too many
    assert (await ex.commit(again, "t2", attempt=3)).unresolved == {"shared.txt": [2]}

    write(again, {"shared.txt": "one\nTWO from t1, two from t2\nthree\n"})
    committed = await ex.commit(again, "t2", attempt=3)
    assert committed.commit is not None and not committed.unresolved
    assert (await ex.merge("t2")).merged
    assert ex.subjects() == ["t1: do t1", "t2: do t2"]


async def test_conflict_markers_moved_to_another_file_are_refused_too(ex: Execution) -> None:
    fix = await conflicted(ex)
    before = git(fix.path, "rev-parse", "HEAD")
    root = Path(fix.path)
    text = (root / "shared.txt").read_text()
    (root / "shared.txt").rename(root / "moved.txt")  # the record knows shared.txt only

    refused = await ex.commit(fix, "t2", attempt=2)

    assert refused.commit is None and refused.unresolved == {"moved.txt": [2, 6]}
    assert refused.conflicting_with == ["task t1"]
    assert git(fix.path, "rev-parse", "HEAD") == before
    write(fix, {"copy.txt": text, "moved.txt": "one\nTWO from t1, two from t2\nthree\n"})
    assert (await ex.commit(fix, "t2", attempt=2)).unresolved == {"copy.txt": [2, 6]}
    (root / "copy.txt").unlink()
    assert (await ex.commit(fix, "t2", attempt=2)).commit is not None


async def test_lines_like_markers_that_were_there_before_are_no_conflict(ex: Execution) -> None:
    heading = "Title\n=======\n\n"  # reStructuredText: a marker-like line on both sides
    await ex.land("doc", {"doc.rst": heading + "old\n"})
    wt1, wt2 = await asyncio.gather(ex.create("t1"), ex.create("t2"))
    write(wt1, {"doc.rst": heading + "from t1\n"})
    write(wt2, {"doc.rst": heading + "from t2\n"})
    await ex.commit(wt1, "t1")
    await ex.commit(wt2, "t2")
    assert (await ex.merge("t1")).merged
    assert not (await ex.merge("t2")).merged
    fix = await ex.create("t2", attempt=2)
    assert fix.conflict_files == ["doc.rst"]

    assert (await ex.commit(fix, "t2", attempt=2)).unresolved == {"doc.rst": [2, 4, 6, 8]}
    write(fix, {"doc.rst": heading + "from t1 and t2\n"})
    assert (await ex.commit(fix, "t2", attempt=2)).commit is not None


async def test_a_fresh_start_forgets_the_conflict(ex: Execution) -> None:
    fix = await conflicted(ex)
    assert (await ex.commit(fix, "t2", attempt=2)).unresolved
    fresh = await ex.create("t2", attempt=1, fresh=True)  # a human said retry
    write(fresh, {"shared.txt": "one\nTWO from t1\nthree\n=======\n"})
    assert (await ex.commit(fresh, "t2")).commit is not None


async def test_commit_and_merge_twice_make_one_commit(ex: Execution) -> None:
    wt = await ex.create("t1")
    write(wt, {"a.txt": "a\n"})
    first = await ex.commit(wt, "t1")
    # Crash after the commit landed, before the result was recorded: the retry finds it.
    again = await ex.commit(wt, "t1")
    assert again == first and first.commit is not None
    assert git(wt.path, "rev-list", "--count", f"{wt.base_commit}..") == "1"
    message = git(wt.path, "log", "-1", "--format=%B")
    assert message == "t1: do t1\n\nCoord-Task: t1"

    merged = await ex.merge("t1")
    # Crash after the merge, before the result was recorded.
    retried = await ex.merge("t1")
    assert merged.merged and not merged.already_merged
    assert retried.merged and retried.already_merged
    assert retried.commit == merged.commit == first.commit  # fast-forward: the task's own commit
    assert retried.head == merged.head == ex.head()
    assert ex.subjects() == ["t1: do t1"]


async def test_merge_retried_after_the_execution_branch_moved(ex: Execution) -> None:
    wt = await ex.create("late")
    write(wt, {"late.txt": "late\n"})
    await ex.commit(wt, "late")
    await ex.land("early", {"early.txt": "early\n"})
    merged = await ex.merge("late")  # cherry-picked onto the moved head: a new commit
    retried = await ex.merge("late")
    assert retried.already_merged and retried.commit == merged.commit
    assert ex.subjects() == ["early: do early", "late: do late"]


async def test_crash_between_merge_commit_and_branch_update(
    ex: Execution, monkeypatch: pytest.MonkeyPatch
) -> None:
    wt = await ex.create("late")
    write(wt, {"late.txt": "late\n"})
    await ex.commit(wt, "late")
    await ex.land("early", {"early.txt": "early\n"})
    before = ex.head()

    async def crash(*args: object) -> None:
        raise RuntimeError("worker died")

    with monkeypatch.context() as patch:
        patch.setattr(worktree_merge, "_advance", crash)
        with pytest.raises(RuntimeError):
            await ex.merge("late")
    assert ex.head() == before  # the merge commit was made but never reached the branch

    result = await ex.merge("late")
    assert result.merged and not result.already_merged
    assert ex.subjects() == ["early: do early", "late: do late"]
    assert_clean(ex.clone)


async def test_a_later_commit_amends_the_task_commit(ex: Execution) -> None:
    wt = await ex.create("t1")
    write(wt, {"a.txt": "a\n"})
    first = await ex.commit(wt, "t1")
    write(wt, {"b.txt": "b\n"})
    second = await ex.commit(wt, "t1", attempt=2)
    assert second.commit != first.commit
    assert sorted(second.files_changed) == ["a.txt", "b.txt"]
    assert git(wt.path, "rev-list", "--count", f"{wt.base_commit}..") == "1"
    assert git(wt.path, "rev-parse", "HEAD~1") == wt.base_commit


async def test_specialist_commits_are_squashed_into_the_task_commit(ex: Execution) -> None:
    wt = await ex.create("t1")
    for name in ("a.txt", "b.txt"):
        write(wt, {name: name})
        git(wt.path, "add", name)
        git(wt.path, "-c", "user.name=agent", "-c", "user.email=a@a", "commit", "-qm", name)
    result = await ex.commit(wt, "t1")
    assert sorted(result.files_changed) == ["a.txt", "b.txt"]
    assert git(wt.path, "log", "--format=%s", f"{wt.base_commit}..") == "t1: do t1"


async def test_no_changes(ex: Execution) -> None:
    wt = await ex.create("t1")
    # Ignored files and the caches gates leave behind are not changes.
    write(wt, {"debug.log": "x\n", "pkg/__pycache__/m.cpython-311.pyc": "x", "m.pyc": "x"})
    write(wt, {".pytest_cache/v/cache": "{}"})
    result = await ex.commit(wt, "t1")
    assert result == CommitResult(commit=None, files_changed=[], no_changes=True)
    assert git(wt.path, "rev-parse", "HEAD") == wt.base_commit
    merged = await ex.merge("t1")
    assert merged.merged and merged.commit is None and merged.head == ex.head()
    assert ex.subjects() == []


async def test_fix_attempt_keeps_the_work_and_fresh_starts_over(ex: Execution) -> None:
    wt = await ex.create("t1")
    write(wt, {"draft.txt": "attempt 1\n"})
    await ex.land("other", {"other.txt": "other\n"})

    # Gates failed: attempt 2 works on top of attempt 1, on the same base.
    fix = await ex.create("t1", attempt=2)
    assert fix == wt
    assert (Path(fix.path) / "draft.txt").read_text() == "attempt 1\n"
    assert not (Path(fix.path) / "other.txt").exists()

    # A human said retry: start over from the execution branch as it is now.
    fresh = await ex.create("t1", attempt=1, fresh=True)
    assert fresh.path == wt.path and fresh.base_commit == ex.head() != wt.base_commit
    assert not (Path(fresh.path) / "draft.txt").exists()
    assert (Path(fresh.path) / "other.txt").exists()
    assert_clean(fresh.path)


async def test_creating_a_worktree_twice_reuses_it(ex: Execution) -> None:
    first = await ex.create("t1")
    write(first, {"work.txt": "kept\n"})
    assert await ex.create("t1") == first
    assert (Path(first.path) / "work.txt").read_text() == "kept\n"


async def test_worktree_whose_creation_was_cut_short_is_made_again(ex: Execution) -> None:
    wt = await ex.create("t1")
    admin = Path(git(wt.path, "rev-parse", "--absolute-git-dir"))
    (admin / "locked").write_text("initializing")  # what `worktree add` leaves when killed
    (Path(wt.path) / "app.py").unlink()
    again = await ex.create("t1")
    assert (Path(again.path) / "app.py").exists()
    assert_clean(again.path)


async def test_a_crash_before_the_files_were_checked_out_is_made_again(
    ex: Execution, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worktree is registered under the clone's lock, its files checked out after it:
    one registered without its files is never taken for a worktree to work in."""

    async def crash(path: Path, made: str) -> bool:
        raise RuntimeError("worker died")

    with monkeypatch.context() as patch:
        patch.setattr(worktrees_module, "_check_out", crash)
        with pytest.raises(RuntimeError, match="worker died"):
            await ex.create("t1")
    half = ex.root / EXECUTION / "worktrees" / "t1"
    assert half.is_dir() and not (half / "app.py").exists()

    again = await ex.create("t1")
    assert (Path(again.path) / "app.py").read_text() == "print('hi')\n"
    assert_clean(again.path)
    assert "locked" not in git(ex.clone, "worktree", "list", "--porcelain")


async def test_remove_is_idempotent(ex: Execution) -> None:
    wt = await ex.create("t1")
    write(wt, {"junk.txt": "x\n"})
    await ex.remove("t1")
    await ex.remove("t1")
    await ex.remove("never-created")
    assert not Path(wt.path).exists()
    assert str(Path(wt.path)) not in git(ex.clone, "worktree", "list")
    assert git(ex.clone, "branch", "--list", wt.branch) == ""
    assert git(ex.clone, "for-each-ref", base_ref(wt.branch)) == ""


async def test_removed_worktree_keeps_its_branch_for_the_next_attempt(ex: Execution) -> None:
    wt = await ex.create("t1")
    write(wt, {"a.txt": "a\n"})
    committed = await ex.commit(wt, "t1")
    await ex.remove("t1", delete_branch=False)
    back = await ex.create("t1", attempt=2)
    assert back.base_commit == wt.base_commit
    assert git(back.path, "rev-parse", "HEAD") == committed.commit


async def test_commit_pending_work_leaves_no_worktree(ex: Execution) -> None:
    await ex.land("done", {"done.txt": "done\n"})
    busy = await ex.create("busy")
    write(busy, {"half.txt": "half\n"})
    idle = await ex.create("idle")
    request = PendingWorkRequest(
        workspace=str(ex.clone), execution_id=EXECUTION, execution_branch=BRANCH
    )

    result = await run(ex.acts.commit_pending_work, request)

    assert result.head == ex.head()
    assert sorted(result.removed_worktrees) == ["busy", "done", "idle"]
    assert result.unfinished_branches == {"busy": busy.branch}
    assert not (ex.root / EXECUTION / "worktrees").exists()
    assert git(ex.clone, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(ex.clone, "branch", "--list", idle.branch) == ""
    kept = git(ex.clone, "show", "--format=%B", "--name-only", busy.branch)
    assert "Coord-Unfinished: busy" in kept and "half.txt" in kept
    assert ex.subjects() == ["done: do done"]  # unfinished work never reaches the branch
    again = await run(ex.acts.commit_pending_work, request)
    assert again.head == result.head and again.removed_worktrees == []


async def test_commit_pending_work_sweeps_what_crashes_left_in_the_git_folder(
    ex: Execution,
) -> None:
    """A registration, a removal or a landing cut short leaves a folder in the clone's git
    folder; once the execution's work is over, they go too."""
    git_folder = ex.clone / ".git"
    for leftover in ("coord-staging/t1-abc", "coord-trash/t2-def", "coord-landed"):
        (git_folder / leftover).mkdir(parents=True)
    (git_folder / "coord-landed" / "coord-task%e1%t3.json").write_text("{}")
    request = PendingWorkRequest(
        workspace=str(ex.clone), execution_id=EXECUTION, execution_branch=BRANCH
    )
    await run(ex.acts.commit_pending_work, request)
    assert not any(
        (git_folder / name).exists() for name in ("coord-staging", "coord-trash", "coord-landed")
    )


async def test_diff_from_base_writes_the_patch(ex: Execution) -> None:
    await ex.land("t1", {"a.txt": "alpha\n"})
    await ex.land("t2", {"app.py": "print('bye')\n"})
    request = DiffRequest(
        workspace=str(ex.clone), base_commit=ex.workspace.base_commit, execution_id=EXECUTION
    )
    summary = await run(ex.acts.diff_from_base, request)
    head = ex.head()
    assert summary.head == head
    assert summary.files == ["a.txt", "app.py"] and summary.total_files == 2
    assert "a.txt" in summary.stat and "2 files changed" in summary.stat
    patch = Path(summary.diff_path)
    assert patch == ex.root / EXECUTION / "artifacts" / f"diff-{head[:12]}.patch"
    assert "+alpha" in patch.read_text() and "+print('bye')" in patch.read_text()
    assert await run(ex.acts.diff_from_base, request) == summary
    assert [p.name for p in patch.parent.iterdir()] == [patch.name]  # no temporary left


def test_stat_is_clipped_to_4kb() -> None:
    lines = [f" file{i:04}.txt | 1 +" for i in range(1000)]
    stat = "\n".join([*lines, " 1000 files changed, 1000 insertions(+)"])
    clipped = clip_stat(stat)
    assert len(clipped.encode()) <= 4096
    assert clipped.endswith("1000 files changed, 1000 insertions(+)")
    assert "more files" in clipped and clipped.startswith(" file0000.txt")


async def test_stale_index_lock_from_a_dead_git_is_removed(ex: Execution) -> None:
    wt = await ex.create("t1")
    write(wt, {"a.txt": "a\n"})
    lock = Path(git(wt.path, "rev-parse", "--absolute-git-dir")) / "index.lock"
    lock.write_text("")
    old = time.time() - 60
    os.utime(lock, (old, old))
    result = await ex.commit(wt, "t1")
    assert result.commit is not None and not lock.exists()


def test_a_lock_a_live_git_holds_is_kept(tmp_path: Path) -> None:
    lock = tmp_path / "index.lock"
    lock.write_text("")
    assert not remove_stale_lock(lock)  # young: its git may be starting up
    old = time.time() - 60
    os.utime(lock, (old, old))
    with lock.open():  # a live git keeps its lock file open
        assert not remove_stale_lock(lock)
    assert lock.exists()
    assert remove_stale_lock(lock) and not lock.exists()


async def test_task_id_that_cannot_be_a_branch_is_rejected(ex: Execution) -> None:
    with pytest.raises(ApplicationError) as raised:
        await ex.create("a..b")
    assert raised.value.non_retryable and raised.value.type == "BadTaskId"


async def test_ids_never_reach_outside_the_workspace_root(ex: Execution) -> None:
    outside = ex.root.parent / "precious"
    outside.mkdir()
    request = RemoveWorktreeRequest(
        workspace=str(ex.clone), execution_id=EXECUTION, task_id="../../../precious"
    )
    for execution_id, task_id in [(EXECUTION, "../../../precious"), ("../precious", "t1")]:
        request = request.model_copy(update={"execution_id": execution_id, "task_id": task_id})
        with pytest.raises(ApplicationError) as raised:
            await run(ex.acts.remove_task_worktree, request)
        assert raised.value.non_retryable and outside.exists()


async def test_missing_execution_branch_is_not_retried(ex: Execution) -> None:
    request = MergeRequest(
        workspace=str(ex.clone),
        execution_branch="coord/nope",
        task_branch=task_branch(EXECUTION, "t1"),
        task_id="t1",
        title="t",
    )
    with pytest.raises(ApplicationError) as raised:
        await run(ex.acts.merge_task, request)
    assert raised.value.non_retryable


async def test_eight_worktrees_made_at_once_are_all_whole(ex: Execution) -> None:
    """Eight creations at once take turns: `git worktree add` reads every other worktree's
    folder, and fails on one that another `add` has only half written."""
    wts = await asyncio.gather(*(ex.create(f"p{n}") for n in range(8)))
    for n, wt in enumerate(wts):
        assert git(wt.path, "rev-parse", "--abbrev-ref", "HEAD") == f"coord-task/e1/p{n}"
        assert (Path(wt.path) / "app.py").read_text() == "print('hi')\n"
        assert_clean(wt.path)
    listed = git(ex.clone, "worktree", "list", "--porcelain")
    assert all(wt.path in listed for wt in wts)
    exclude = (ex.clone / ".git" / "info" / "exclude").read_text()
    assert exclude.count("# added by coord") == 1


async def test_a_worktree_registered_in_process_is_one_git_knows(ex: Execution) -> None:
    """activities/worktree_add.py writes what `git worktree add` writes: git lists it, has
    nothing to prune, works in it and removes it."""
    wt = await ex.create("t1")
    listed = git(ex.clone, "worktree", "list", "--porcelain")
    assert f"worktree {wt.path}\nHEAD {wt.base_commit}\nbranch refs/heads/{wt.branch}" in listed
    assert "locked" not in listed
    assert git(ex.clone, "worktree", "prune", "--dry-run", "--verbose") == ""
    assert git(wt.path, "rev-parse", "--git-common-dir") == str(ex.clone / ".git")
    write(wt, {"new.txt": "new\n"})
    assert git(wt.path, "status", "--porcelain") == "?? new.txt"
    git(ex.clone, "worktree", "remove", "--force", wt.path)
    assert not Path(wt.path).exists()
    assert git(ex.clone, "worktree", "list", "--porcelain").count("worktree ") == 1


async def test_a_worktree_id_that_is_taken_gets_a_number(ex: Execution, tmp_path: Path) -> None:
    """Two worktree folders of the same name: the second registration is `<name>1`, as git
    names it."""
    first, second = tmp_path / "a" / "same", tmp_path / "b" / "same"
    await register_worktree(ex.clone, first, "coord-task/x/one", ex.head())
    await register_worktree(ex.clone, second, "coord-task/x/two", ex.head())
    registry = ex.clone / ".git" / "worktrees"
    assert sorted(p.name for p in registry.iterdir()) == ["same", "same1"]
    assert (second / ".git").read_text() == f"gitdir: {registry / 'same1'}\n"
    for folder in (first, second):
        git(folder, "reset", "--hard", "--quiet")
        assert (folder / "app.py").exists()
    listed = git(ex.clone, "worktree", "list", "--porcelain")
    assert listed.count("locked initializing") == 2  # until the files are checked out
    assert not (ex.clone / ".git" / "coord-staging").exists() or not any(
        (ex.clone / ".git" / "coord-staging").iterdir()
    )


async def test_the_files_changed_are_the_ones_git_lists(ex: Execution) -> None:
    """The commit's tree and file list come from libgit2: the same as `git write-tree` and
    `git diff-tree -r --name-only` say, deletions, modes, nesting and non-ASCII names too."""
    wt = await ex.create("t1")
    write(wt, {"z/ü ber.txt": "u\n", "a/b/c.txt": "c\n", "app.py": "print('bye')\n"})
    (Path(wt.path) / "shared.txt").unlink()
    (Path(wt.path) / "run.sh").write_text("#!/bin/sh\n")
    (Path(wt.path) / "run.sh").chmod(0o755)
    committed = await ex.commit(wt, "t1")
    assert committed.commit is not None
    listed = git(
        wt.path,
        *("-c", "core.quotePath=false", "diff-tree", "-r", "--name-only", "--no-commit-id"),
        wt.base_commit,
        committed.commit,
    )
    assert committed.files_changed == listed.splitlines()
    assert git(wt.path, "rev-parse", f"{committed.commit}^{{tree}}") == git(wt.path, "write-tree")
