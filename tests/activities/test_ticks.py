"""Ticking finished tasks back in their plan file: the text edits, and the merge that makes the
tick part of each task's own commit on the execution branch (real git)."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import pytest

from coordinator.branches import MergeResult
from coordinator.progress import PlanSource, PlanTickRequest, TaskTick
from coordinator.readers import read_markdown
from coordinator.report import ExecutionReport, TaskState
from coordinator.ticks import tick_plan_text
from tests.activities.worktree_support import (
    BRANCH,
    Execution,
    git,
    merge_request,
    run,
    scratch_execution,
    write,
)

TASKS = textwrap.dedent(
    """\
    # Tasks
    ## Phase 1: Setup
    - [ ] T001 Create src/a.py
    - [ ] T002 [P] Create src/b.py
    - [ ] T003 [P] Create src/c.py
    - [-] T004 Dropped
    """
)


def source_of(text: str) -> PlanSource:
    parsed = read_markdown(text, "tasks.md")
    assert parsed.plan_source is not None
    return parsed.plan_source.model_copy(update={"path": "specs/001/tasks.md"})


def request(source: PlanSource, task_id: str) -> PlanTickRequest:
    tick = source.request_for(task_id)
    assert tick is not None
    return tick


def test_a_tick_changes_only_the_mark_of_the_tasks_line() -> None:
    source = source_of(TASKS)
    assert source.mark == "X" and set(source.tasks) == {"t001", "t002", "t003"}
    done = tick_plan_text(TASKS, request(source, "t002"))
    assert done.changed
    assert done.text == TASKS.replace("- [ ] T002", "- [X] T002")
    # Ticking twice changes nothing; a line that moved is found by its text.
    assert not tick_plan_text(done.text, request(source, "t002")).changed
    moved = "Intro added by a human\n\n" + TASKS
    again = tick_plan_text(moved, request(source, "t003"))
    assert again.text == moved.replace("- [ ] T003", "- [X] T003")
    # A line someone rewrote is not ticked, and the note says why.
    gone = tick_plan_text(
        TASKS.replace("Create src/a.py", "Create src/z.py"), request(source, "t001")
    )
    assert not gone.changed and "no longer there" in gone.note


def test_crlf_files_keep_their_line_endings() -> None:
    crlf = TASKS.replace("\n", "\r\n")
    source = source_of(crlf)
    assert tick_plan_text(crlf, request(source, "t001")).text == crlf.replace(
        "- [ ] T001", "- [X] T001"
    )


def test_a_kiro_container_is_ticked_with_its_last_child() -> None:
    text = "# Plan\n- [ ] 1. Build\n  - [ ] 1.1 Model\n  - [ ] 1.2 View\n- [ ] 2. Ship\n"
    parsed = read_markdown(text, "tasks.md")
    assert parsed.reader == "kiro" and parsed.plan_source is not None
    source = parsed.plan_source.model_copy(update={"path": "tasks.md"})
    first = tick_plan_text(text, request(source, "1.1")).text
    assert first == text.replace("- [ ] 1.1", "- [x] 1.1")  # the container waits for 1.2
    second = tick_plan_text(first, request(source, "1.2")).text
    assert "- [x] 1. Build" in second and "- [x] 1.2 View" in second
    assert "- [ ] 2. Ship" in second


def test_taskmaster_status_done_and_the_parent_with_its_subtasks() -> None:
    data = {
        "master": {
            "tasks": [
                {
                    "id": 1,
                    "title": "API",
                    "status": "pending",
                    "subtasks": [
                        {"id": 1, "title": "Routes", "status": "done"},
                        {"id": 2, "title": "Handlers", "status": "pending"},
                    ],
                },
                {"id": 2, "title": "Docs", "status": "pending"},
            ]
        }
    }
    text = json.dumps(data, indent=2) + "\n"

    def tick(task_id: str, body: str) -> str:
        req = PlanTickRequest(
            path="t.json",
            format="taskmaster",
            tag="master",
            tick=TaskTick(taskmaster_id=task_id),
        )
        outcome = tick_plan_text(body, req)
        assert outcome.changed, outcome.note
        return outcome.text

    after = json.loads(tick("1.2", text))
    task = after["master"]["tasks"][0]
    assert [s["status"] for s in task["subtasks"]] == ["done", "done"]
    assert task["status"] == "done"
    assert after["master"]["tasks"][1]["status"] == "pending"
    assert tick("2", text).endswith("\n")
    # Only the status moved: the rest of the file is byte for byte what Taskmaster wrote.
    assert tick("2", text) == text.replace(
        '"title": "Docs",\n        "status": "pending"',
        '"title": "Docs",\n        "status": "done"',
    )


# --- the merge ---------------------------------------------------------------------------------


@pytest.fixture
async def ex(tmp_path: Path) -> Execution:
    return await scratch_execution(tmp_path, {"specs/001/tasks.md": TASKS, "README.md": "# demo\n"})


async def merge(ex: Execution, task_id: str, tick: PlanTickRequest | None) -> MergeResult:
    return await run(ex.acts.merge_task, merge_request(ex, task_id, tick))


def plan_on_branch(ex: Execution) -> str:
    return git(ex.clone, "show", f"{BRANCH}:specs/001/tasks.md") + "\n"


async def test_parallel_tasks_tick_their_lines_in_their_own_commits(ex: Execution) -> None:
    source = source_of(TASKS)
    wts = await asyncio.gather(*(ex.create(t) for t in ("t001", "t002", "t003")))
    for wt, name in zip(wts, ("a", "b", "c"), strict=True):
        write(wt, {f"src/{name}.py": f"{name} = 1\n"})
    await asyncio.gather(
        *(ex.commit(wt, t) for wt, t in zip(wts, ("t001", "t002", "t003"), strict=True))
    )
    # Adjacent lines, ticked by three tasks that ran side by side: no conflict.
    results = [await merge(ex, t, request(source, t)) for t in ("t001", "t002", "t003")]
    assert all(r.merged for r in results)
    assert [r.tick_note for r in results] == ["ticked in specs/001/tasks.md"] * 3
    assert plan_on_branch(ex) == TASKS.replace("- [ ] T00", "- [X] T00")
    for result, task_id in zip(results, ("t001", "t002", "t003"), strict=True):
        files = git(ex.clone, "show", "--name-only", "--format=", result.commit or "").split()
        assert sorted(files) == sorted(
            [f"src/{'abc'[int(task_id[-1]) - 1]}.py", "specs/001/tasks.md"]
        )
    assert ex.subjects() == ["t001: do t001", "t002: do t002", "t003: do t003"]
    # A retried merge finds the task's commit, tick included, and lands nothing twice.
    again = await merge(ex, "t002", request(source, "t002"))
    assert again.already_merged and again.commit == results[1].commit


async def test_a_task_without_changes_still_ticks_its_line(ex: Execution) -> None:
    source = source_of(TASKS)
    wt = await ex.create("t001")
    committed = await ex.commit(wt, "t001")
    assert committed.no_changes
    result = await merge(ex, "t001", request(source, "t001"))
    assert result.merged and result.commit is not None
    assert "- [X] T001 Create src/a.py" in plan_on_branch(ex)
    assert ex.subjects() == ["t001: do t001"]


async def test_a_plan_file_not_in_the_branch_is_said_not_ticked(ex: Execution) -> None:
    source = source_of(TASKS).model_copy(update={"path": "elsewhere/tasks.md"})
    wt = await ex.create("t001")
    write(wt, {"src/a.py": "a = 1\n"})
    await ex.commit(wt, "t001")
    result = await merge(ex, "t001", request(source, "t001"))
    assert result.merged
    assert result.tick_note == "not ticked: elsewhere/tasks.md is not in the branch"
    assert plan_on_branch(ex) == TASKS


def test_the_report_says_what_was_ticked_and_what_was_left_open() -> None:
    ticked = "ticked in specs/001/tasks.md"
    tasks = [
        TaskState(id="t001", title="A", status="passed", plan_tick=ticked),
        TaskState(id="t002", title="B", status="passed", plan_tick=ticked),
        TaskState(id="t003", title="C", status="skipped", last_error="a human skipped it: flaky"),
        TaskState(
            id="t004",
            title="D",
            status="passed",
            plan_tick="not ticked in specs/001/tasks.md: its checkbox (line 6 when the plan "
            "was read) is no longer there",
        ),
    ]
    report = ExecutionReport(
        execution_id="e1", plan_name="p", status="Partial", phases=[], tasks=tasks
    )
    text = report.to_markdown()
    section = text[text.index("### Plan file") :].split("\n\n###")[0]
    assert section.splitlines()[2:] == [
        "- In specs/001/tasks.md: ticked t001, t002",
        "- t003 left open (skipped: a human skipped it: flaky)",
        "- t004 passed, not ticked in specs/001/tasks.md: its checkbox (line 6 when the plan "
        "was read) is no longer there",
    ]
    # Without a plan file to tick (a YAML plan), the report has no such section.
    plain = [task.model_copy(update={"plan_tick": None}) for task in tasks]
    assert "### Plan file" not in report.model_copy(update={"tasks": plain}).to_markdown()
