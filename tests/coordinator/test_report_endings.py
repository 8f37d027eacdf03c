"""The report tells the truth in every ending: what is done, what is not and why, and a to-do
item (with the command that continues) for every task, gate and phase left undone.

Pure: each test builds the progress an execution holds when it ends that way (as the
workflow leaves it) and reads the report `ExecutionReport.from_progress` makes of it. The
engine tests at the bottom drive a real skip and a real abort end to end.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.client import Client

from coordinator.escalation import Action, Approval, ApprovalAnswer, Escalation, Resolution
from coordinator.outcome import settled_phases, stop_reason
from coordinator.report import (
    PHASES,
    ExecutionReport,
    ExecutionStatus,
    GateSummary,
    PhaseState,
    Progress,
    TaskState,
    Workspace,
)
from tests.cli_support import coord
from tests.engine_support import make_repo, pending_escalation, shell_task, start, write_plan

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
BRANCH = "coord/demo-1a2b3c"
CONTINUE = f"`coord run PLAN` with `base_branch: {BRANCH}`"


def task(tid: str, status: str, *, attempts: int = 0, started: bool = False) -> TaskState:
    return TaskState(
        id=tid,
        title=f"do {tid}",
        status=status,
        attempts=attempts,
        started_at=T0 if started else None,
        finished_at=T0 + timedelta(seconds=30) if status in ("passed", "failed") else None,
    )


def progress(
    status: ExecutionStatus,
    tasks: list[TaskState],
    phases: dict[str, str],
    **fields: object,
) -> Progress:
    return Progress(
        execution_id="demo-1a2b3c",
        plan_name="demo",
        status=status,
        phases=[PhaseState(name=name, status=phases.get(name, "pending")) for name in PHASES],
        tasks=tasks,
        workspace=Workspace(
            path="/w/demo-1a2b3c/repo",
            branch=BRANCH,
            base_branch="main",
            base_commit="a" * 40,
            head_commit="b" * 40,
        ),
        **fields,
    )


def escalation(
    eid: str, task_id: str | None, action: Action, by: str = "tester", **fields: object
) -> Escalation:
    return Escalation(
        id=eid,
        phase="implementation" if task_id else "validation",
        task_id=task_id,
        reason="gate tests failed 3 times",
        question="retry, skip or abort?",
        state=fields.pop("state", "answered"),
        answer=Resolution(escalation_id=eid, action=action, by=by),
        **fields,
    )


def report_of(p: Progress, todo: list[str] | None = None) -> ExecutionReport:
    return ExecutionReport.from_progress(p, human_todo=todo or [], finished_at=T0)


def items_about(report: ExecutionReport, needle: str) -> list[str]:
    return [item for item in report.human_todo if needle in item]


ALL_DONE = {"setup": "done", "implementation": "done", "validation": "done"}


def test_complete_has_nothing_to_do() -> None:
    p = progress(
        ExecutionStatus.COMPLETED,
        [task("a", "passed", attempts=1, started=True)],
        {**ALL_DONE, "integration": "done", "review": "skipped"},
    )
    report = report_of(p)
    assert report.status == "Complete"
    assert report.human_todo == []
    assert [ph.status for ph in report.phases] == ["done", "done", "done", "done", "skipped"]
    assert p.percent == 100
    assert "### Final Validation Required\n\n- nothing" in report.to_markdown()


def test_partial_after_a_skip_names_the_task_who_skipped_it_and_how_to_continue() -> None:
    p = progress(
        ExecutionStatus.PARTIAL,
        [task("a", "passed", attempts=1, started=True), task("b", "skipped", attempts=3)],
        {**ALL_DONE, "integration": "done", "review": "done"},
        escalations=[escalation("b:1", "b", Action.SKIP)],
    )
    report = report_of(p)
    (item,) = items_about(report, "Task b")
    assert "was skipped by tester at escalation b:1 (gate tests failed 3 times)" in item
    assert CONTINUE in item
    # Progress counts passed tasks only, once the execution has ended.
    assert p.percent == 50
    markdown = report.to_markdown()
    assert "- nothing" not in markdown
    assert "→ skip by tester" in markdown
    assert "Total Tasks: 1 completed / 2 total (1 skipped)" in markdown


def test_abort_marks_the_phases_that_will_not_run_and_the_tasks_that_did_not() -> None:
    p = progress(
        ExecutionStatus.PARTIAL,
        [
            task("a", "passed", attempts=1, started=True),
            task("b", "failed", attempts=3, started=True),
            task("c", "pending"),
        ],
        {"setup": "done", "implementation": "done"},
        escalations=[escalation("b:1", "b", Action.ABORT, by="ada")],
    )
    p.tasks[1].last_error = "gate tests failed\nmore detail"
    report = report_of(p, ["Aborted: finished tasks are on the branch."])
    assert stop_reason(p) == "aborted by ada (escalation b:1)"
    phases = {ph.name: ph for ph in report.phases}
    for name in ("validation", "integration", "review"):
        assert phases[name].status == "not_run"
        assert phases[name].summary == "not run (aborted by ada (escalation b:1))"
    assert [t.status for t in report.tasks] == ["passed", "failed", "not_run"]
    assert "failed after 3 attempt(s): gate tests failed." in items_about(report, "Task b")[0]
    assert "did not run (aborted by ada" in items_about(report, "Task c")[0]
    assert all(CONTINUE in i for i in items_about(report, "Task "))
    assert items_about(report, "The integration phase did not run")
    assert items_about(report, "The review phase did not run")
    assert report.human_todo[0] == "Aborted: finished tasks are on the branch."
    assert p.percent == 33
    assert "| review | not_run | not run (aborted by ada" in report.to_markdown()


def test_cancel_the_running_task_reads_interrupted_not_pending() -> None:
    # The workflow puts the running task back to `pending` when it cleans up after a cancel.
    p = progress(
        ExecutionStatus.CANCELLED,
        [task("a", "passed", attempts=1, started=True), task("b", "pending", attempts=1)],
        {"setup": "done", "implementation": "running"},
    )
    p.tasks[1].started_at = T0
    report = report_of(p)
    assert [t.status for t in report.tasks] == ["passed", "interrupted"]
    implementation = next(ph for ph in report.phases if ph.name == "implementation")
    assert implementation.status == "interrupted"
    assert "interrupted (cancelled)" in implementation.summary
    (item,) = items_about(report, "Task b")
    assert "was interrupted after 1 attempt(s) (cancelled)" in item and CONTINUE in item
    assert report.status == "Cancelled"


def test_failed_execution() -> None:
    p = progress(
        ExecutionStatus.FAILED,
        [task("a", "pending")],
        {"setup": "done", "implementation": "running"},
        problems=["activity merge_task failed: disk full"],
    )
    report = report_of(p, ["Fix the problem listed above and run the plan again."])
    assert [ph.status for ph in report.phases][:3] == ["done", "failed", "not_run"]
    assert "did not run (failed)" in items_about(report, "Task a")[0]
    assert report.status == "Failed"


def test_a_timed_out_question_and_a_skipped_gate() -> None:
    timed_out = escalation("validation:1", None, Action.ABORT, by="", state="timed_out")
    p = progress(
        ExecutionStatus.PARTIAL,
        [task("a", "passed", attempts=1, started=True)],
        {"setup": "done", "implementation": "done", "validation": "done"},
        escalations=[timed_out],
        gates=[
            GateSummary(
                name="lint", level="system", scope="all", passed=False, log_path="/l/lint.log"
            )
        ],
    )
    report = report_of(p)
    assert stop_reason(p) == "aborted: nobody answered escalation validation:1 in time"
    (gate,) = items_about(report, "gate lint (all)")
    assert "still fails" in gate and "/l/lint.log" in gate and CONTINUE in gate
    assert "abort by the plan's on_escalation_timeout" in report.to_markdown()


def test_budget_stop_and_rejection_say_why() -> None:
    budget = escalation("budget:1", None, Action.ABORT, by="ops", budget_usd=5.0, spent_usd=5.2)
    p = progress(
        ExecutionStatus.PARTIAL,
        [task("a", "passed", attempts=1, started=True), task("b", "pending")],
        {"setup": "done", "implementation": "done"},
        escalations=[budget],
    )
    assert stop_reason(p) == "stopped at the budget by ops (escalation budget:1)"
    assert "did not run (stopped at the budget" in items_about(report_of(p), "Task b")[0]

    rejected = Approval(
        name="before_handoff",
        question="hand off?",
        state="rejected",
        answer=ApprovalAnswer(reason="not this week", by="lead"),
    )
    p = progress(
        ExecutionStatus.PARTIAL,
        [task("a", "passed", attempts=1, started=True)],
        ALL_DONE,
        approvals=[rejected],
    )
    report = report_of(p)
    assert [ph.status for ph in settled_phases(p)][3:] == ["not_run", "not_run"]
    assert "not run (rejected at before_handoff by lead)" in report.phases[3].summary
    assert "- before_handoff: rejected by lead (not this week)" in report.to_markdown()


def test_a_running_execution_is_reported_as_it_is() -> None:
    p = progress(
        ExecutionStatus.RUNNING,
        [task("a", "running", attempts=1, started=True), task("b", "skipped")],
        {"setup": "done", "implementation": "running"},
    )
    report = report_of(p)  # the pull request's first body
    assert report.status == "In progress"
    assert [t.status for t in report.tasks] == ["running", "skipped"]
    assert report.human_todo == []
    assert p.percent == 50  # while running, a skip counts as settled (the search attribute)


# --- end to end: a real skip and a real abort, read by `coord report` ------------------------


GATE_FAILS = "echo 'assert 2 == 3' && exit 1"


def stuck(task_id: str, depends_on: list[str] | None = None) -> dict[str, object]:
    return shell_task(
        task_id,
        f"echo {task_id} > {task_id}.txt",
        depends_on=depends_on or [],
        gates=[{"name": "tests", "run": GATE_FAILS}],
    )


@pytest.mark.parametrize("answer", ["--skip", "--abort"])
async def test_skip_and_abort_end_to_end(
    client: Client,
    task_queue: str,
    cli_env: dict[str, str],
    worker: None,
    tmp_path: Path,
    answer: str,
) -> None:
    make_repo(tmp_path / "repo", {"README.md": "# demo\n"})
    plan = write_plan(
        tmp_path,
        {
            "tasks": [
                shell_task("ok", "echo ok > ok.txt", depends_on=[]),
                stuck("stuck", ["ok"]),
                shell_task("after", "echo after > after.txt", depends_on=["ok"]),
            ],
            "max_parallel": 1,
        },
    )
    handle = await start(client, task_queue, plan)
    escalation_ = await pending_escalation(handle)
    code, out, err = await coord("resolve", handle.id, answer, "--by", "tester", env=cli_env)
    assert code == 0, err
    await asyncio.wait_for(handle.result(), 90)
    code, out, err = await coord("report", handle.id, "--json", env=cli_env)
    report = ExecutionReport.model_validate_json(out)
    assert code == 1, err
    assert report.status == "Partial"
    (answered,) = [e for e in report.escalations if e.id == escalation_.id]
    assert answered.answer is not None and answered.answer.by == "tester"
    todo = "\n".join(report.human_todo)
    assert "Task stuck (" in todo and f"base_branch: coord/{handle.id}" in todo
    statuses = {t.id: t.status for t in report.tasks}
    phases = {ph.name: ph.status for ph in report.phases}
    if answer == "--skip":
        assert statuses["stuck"] == "skipped" and "skipped by tester" in todo
        assert phases["integration"] == "done"
    else:
        assert statuses["stuck"] in ("failed", "not_run", "interrupted")
        assert phases["integration"] == phases["review"] == "not_run"
        assert "The integration phase did not run (aborted by tester" in todo
    assert "pending" not in phases.values()
    code, out, err = await coord("report", handle.id, env=cli_env)
    assert "- nothing" not in out.split("### Final Validation Required")[1]
