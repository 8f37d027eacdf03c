"""A specialist that leaves a git repository of its own in its worktree, end to end (real
Temporal server, real git, the jail): the commit is refused as a failed attempt, the next
attempt is told which folder and what to do, and once it has done so the files land; a bare
submodule link never does."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client

from tests.engine_support import (
    CLONE_A_LIBRARY,
    branch_log,
    command_agent,
    git,
    make_repo,
    running_worker,
    shell_task,
    start,
    write_plan,
)


async def test_a_nested_repository_is_refused_and_its_files_land_once_it_is_removed(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    # The fix attempt does what it is told, and keeps what it was told in the worktree
    # (committed with the rest, so the test can read it).
    command_agent(
        tmp_path / "agents",
        "tidy",
        "printf '%s' \"$COORD_FEEDBACK\" > feedback.txt; rm -rf vendor/lib/.git",
    )
    plan = write_plan(
        tmp_path,
        {
            "specialists_dir": "./agents",
            "fixer": "tidy",
            "tasks": [shell_task("t", CLONE_A_LIBRARY)],
        },
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        report = await handle.result()

    assert report.status == "Complete", report.model_dump_json()
    [task] = report.tasks
    assert (task.status, task.attempts) == ("passed", 2)
    assert branch_log(report) == ["t: Task t"]
    ws = report.workspace
    assert ws is not None
    tree = git(Path(ws.path), "ls-tree", "-r", ws.branch)
    assert "vendor/lib/lib.py" in tree and "160000" not in tree
    told = git(Path(ws.path), "show", f"{ws.branch}:feedback.txt")
    assert "vendor/lib/ is a git repository of its own" in told
    assert "rm -rf -- ./vendor/lib/.git" in told
