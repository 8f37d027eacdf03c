"""The fix loop end to end (real Temporal server, real git, real processes): what each
attempt is told of the earlier ones, and merge conflicts.

Two parallel tasks that rewrite the same line: the second one's merge conflicts and its
worktree is rebuilt with the conflict markers for the fixer. Nothing with markers may land.
"""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client

from coordinator.escalation import Action, Resolution
from tests.engine_support import (
    branch_log,
    command_agent,
    git,
    make_repo,
    running_worker,
    shell_task,
    start,
    wait_for,
    write_plan,
)

# Task b rewrites the line only once task a's commit is on the execution branch (bounded
# at 60 s, so a broken run fails instead of hanging): its merge is sure to conflict.
AFTER_A = (
    "for i in $(seq 600); do git log --branches='coord/*' --format=%s | grep -q '^a: ' "
    "&& break; sleep 0.1; done; "
)


async def test_a_fixer_that_leaves_conflict_markers_fails_and_the_escalation_says_why(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo", {"shared.txt": "one\ntwo\nthree\n"})
    # A fixer that exits 0 without resolving anything, keeping what it was told.
    command_agent(
        tmp_path / "agents",
        "lazy-fixer",
        f'printf "%s" "$COORD_FEEDBACK" > {tmp_path}/feedback-$COORD_ATTEMPT.txt',
    )
    plan = write_plan(
        tmp_path,
        {
            # The fixer notes its feedback outside its worktree, which the jail would refuse.
            "confine": "off",
            "specialists_dir": "./agents",
            "fixer": "lazy-fixer",
            "tasks": [
                shell_task("a", "printf 'one\\nA from a\\nthree\\n' > shared.txt"),
                shell_task("b", AFTER_A + "printf 'one\\nB from b\\nthree\\n' > shared.txt"),
            ],
        },
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        progress = await wait_for(
            handle, lambda p: bool(p.pending_escalations) or p.status.finished
        )
        assert progress.pending_escalations, progress.model_dump_json()
        [escalation] = progress.pending_escalations
        await handle.execute_update(
            "resolve_escalation", Resolution(escalation_id=escalation.id, action=Action.ABORT)
        )
        report = await handle.result()

    # Nothing with markers ever reached the execution branch: b's work is not on it at all.
    assert branch_log(report) == ["a: Task a"]
    ws = report.workspace
    assert ws is not None
    assert git(Path(ws.path), "show", f"{ws.branch}:shared.txt") == "one\nA from a\nthree"
    assert {t.id: t.status for t in report.tasks} == {"a": "passed", "b": "failed"}

    # The escalation names the conflicting file and the other task, and keeps every attempt.
    assert (escalation.task_id, escalation.attempts) == ("b", 3)
    assert "shared.txt" in escalation.last_error and "task a" in escalation.last_error
    assert [f.attempt for f in escalation.failures] == [1, 2, 3]
    first, second, third = escalation.failures
    assert first.error.startswith("merge conflict: task b conflicts with task a in shared.txt")
    assert "A from a" in first.detail and "B from b" in first.detail
    assert "conflict markers" in second.error and "shared.txt" in third.error

    # The fixer was told who it clashed with, where, and both sides; attempt 3 still hears of
    # attempt 1's conflict.
    told = (tmp_path / "feedback-2.txt").read_text()
    assert "task b conflicts with task a in shared.txt" in told
    for side in ("<<<<<<< coord/", "A from a", "=======", "B from b", ">>>>>>> coord-task/"):
        assert side in told
    later = (tmp_path / "feedback-3.txt").read_text()
    assert "Attempt 1 failed: merge conflict: task b conflicts with task a" in later
    assert "Attempt 2 failed: conflict markers" in later
    assert later.index("Attempt 1 failed") < later.index("Attempt 2 failed")


SEEN = ["first try", "fix 2", "fix 3"]  # out.txt as the gate saw it, attempt after attempt


async def test_every_attempt_hears_of_every_earlier_failure(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    command_agent(
        tmp_path / "agents",
        "fixer-agent",
        f'printf "%s" "$COORD_FEEDBACK" > {tmp_path}/feedback-$COORD_ATTEMPT.txt; '
        'echo "fix $COORD_ATTEMPT" > out.txt',
    )
    gate = {"name": "good", "run": 'echo "gate saw: $(cat out.txt)"; grep -q good out.txt'}
    plan = write_plan(
        tmp_path,
        {
            # The fixer notes its feedback outside its worktree, which the jail would refuse.
            "confine": "off",
            "specialists_dir": "./agents",
            "fixer": "fixer-agent",
            "tasks": [shell_task("t", "echo first try > out.txt", gates=[gate])],
        },
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        progress = await wait_for(
            handle, lambda p: bool(p.pending_escalations) or p.status.finished
        )
        [escalation] = progress.pending_escalations
        await handle.execute_update(
            "resolve_escalation", Resolution(escalation_id=escalation.id, action=Action.SKIP)
        )
        await handle.result()

    later = (tmp_path / "feedback-3.txt").read_text()
    assert "gate saw: first try" in later and "gate saw: fix 2" in later
    assert later.index("Attempt 1 failed") < later.index("Attempt 2 failed")
    assert [f.attempt for f in escalation.failures] == [1, 2, 3]
    details = [f.detail for f in escalation.failures]
    assert [f"gate saw: {seen}" in d for seen, d in zip(SEEN, details, strict=True)] == [True] * 3
