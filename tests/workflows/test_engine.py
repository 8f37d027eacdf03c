"""The execution engine end to end: real Temporal server, real git, real processes."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from activities.command_specialist import CommandSpecialistActivities
from activities.worktrees import WorktreeActivities
from coordinator.escalation import Action, ApprovalAnswer, Resolution
from coordinator.work import SpecialistRequest, SpecialistResult
from tests.engine_support import (
    branch_log,
    command_agent,
    git,
    make_repo,
    pending_escalation,
    running_worker,
    shell_task,
    start,
    wait_for,
    worktrees,
    write_plan,
)
from tests.jail_support import running, sleeper, until_running
from tests.workflows.test_hosts import activities_of
from workflows.execution import ExecutionWorkflow


def times(log: Path) -> dict[str, tuple[float, float]]:
    """task -> (start, end) as the tasks recorded them."""
    spans: dict[str, list[float]] = {}
    for line in log.read_text().splitlines():
        task, what, stamp = line.split()
        spans.setdefault(task, [0.0, 0.0])[0 if what == "start" else 1] = float(stamp)
    return {task: (s, e) for task, (s, e) in spans.items()}


# Plans whose commands do what the jail would refuse them (log their times to one file outside
# every worktree, switch branches): these tests are about other things.
UNJAILED = {"confine": "off"}


def timed(task_id: str, log: Path, seconds: float, **extra: object) -> dict[str, object]:
    prompt = (
        f"echo {task_id} start $(date +%s.%N) >> {log}; sleep {seconds}; "
        f"echo {task_id} > {task_id}.txt; echo {task_id} end $(date +%s.%N) >> {log}"
    )
    return shell_task(task_id, prompt, **extra)


async def test_parallel_tasks_respect_dependencies_and_max_parallel(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    log = tmp_path / "times.log"
    plan = write_plan(
        tmp_path,
        {
            **UNJAILED,
            "max_parallel": 2,
            "tasks": [
                timed("a", log, 1, depends_on=[]),
                timed("b", log, 1, depends_on=[]),
                timed("c", log, 1, depends_on=[]),
                timed("d", log, 0.2, depends_on=["a", "b"]),
            ],
            "gates": [{"name": "all-files", "run": "test -f a.txt && test -f d.txt"}],
        },
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        report = await handle.result()

    assert report.status == "Complete", report.to_markdown()
    spans = times(log)
    events = sorted([(s, 1) for s, _ in spans.values()] + [(e, -1) for _, e in spans.values()])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 2  # parallel, and never more than max_parallel
    assert spans["d"][0] >= max(spans["a"][1], spans["b"][1])  # after its dependencies
    # One commit per task on the execution branch, named after the task.
    assert sorted(branch_log(report)) == ["a: Task a", "b: Task b", "c: Task c", "d: Task d"]
    assert [(g.level, g.name, g.passed) for g in report.gates] == [("system", "all-files", True)]


async def test_a_failing_gate_is_fixed_on_the_second_attempt(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    command_agent(
        tmp_path / "agents",
        "fixer-agent",
        'printf "%s" "$COORD_FEEDBACK" > feedback.txt; echo good > out.txt',
    )
    plan = write_plan(
        tmp_path,
        {
            "specialists_dir": "./agents",
            "fixer": "fixer-agent",
            "tasks": [
                shell_task(
                    "t", "echo bad > out.txt", gates=[{"name": "good", "run": "grep good out.txt"}]
                )
            ],
        },
    )
    async with running_worker(client, task_queue, tmp_path):
        report = await (await start(client, task_queue, plan)).result()

    assert report.status == "Complete", report.to_markdown()
    task = report.tasks[0]
    assert (task.status, task.attempts) == ("passed", 2)
    ws = Path(report.workspace.path)  # type: ignore[union-attr]
    # The fixer got the failing gate's output, and its work is the task's one commit.
    assert "gate 'good' failed" in git(ws, "show", f"{report.workspace.branch}:feedback.txt")  # type: ignore[union-attr]
    assert git(ws, "show", f"{report.workspace.branch}:out.txt") == "good"  # type: ignore[union-attr]
    assert branch_log(report) == ["t: Task t"]


async def test_three_failures_escalate_and_retry_with_guidance_completes(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    log = tmp_path / "times.log"
    plan = write_plan(
        tmp_path,
        {
            **UNJAILED,
            "tasks": [
                shell_task("first", "echo 1 > first.txt"),
                shell_task(
                    "greet",
                    'printf "%s" "${COORD_GUIDANCE:-Hello}" > greeting.txt',
                    gates=[{"name": "french", "run": 'test "$(cat greeting.txt)" = Bonjour'}],
                    depends_on=["first"],
                ),
                timed("other", log, 0.1, depends_on=[]),
                shell_task("after", "echo after > after.txt", depends_on=["greet"]),
            ],
        },
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        escalation = await pending_escalation(handle)
        progress = await wait_for(
            handle, lambda p: {t.id: t.status for t in p.tasks}["other"] == "passed"
        )
        assert progress.status.value == "escalated"
        assert (escalation.id, escalation.task_id) == ("greet:1", "greet")
        assert escalation.attempts == 3
        assert escalation.phase == "implementation"
        assert "gate french failed" in escalation.last_error
        assert "first" in escalation.completed
        assert "greet" in escalation.remaining
        assert escalation.artifacts and Path(escalation.artifacts[0]).is_file()

        answered = await handle.execute_update(
            "resolve_escalation",
            Resolution(action=Action.RETRY, guidance="Bonjour"),
            result_type=type(escalation),
        )
        assert answered.state == "answered"
        report = await handle.result()

    assert report.status == "Complete", report.to_markdown()
    greet = next(t for t in report.tasks if t.id == "greet")
    assert (greet.status, greet.attempts) == ("passed", 4)
    assert [e.answer.guidance for e in report.escalations if e.answer] == ["Bonjour"]
    assert "after: Task after" in branch_log(report)


async def test_skip_skips_dependants_and_reports_partial(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    plan = write_plan(
        tmp_path,
        {
            "tasks": [
                shell_task("broken", "exit 3"),
                shell_task("child", "echo x > x.txt", depends_on=["broken"]),
                shell_task("fine", "echo y > y.txt", depends_on=[]),
            ]
        },
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        escalation = await pending_escalation(handle)
        await handle.execute_update(
            "resolve_escalation",
            Resolution(escalation_id=escalation.id, action=Action.SKIP),
            result_type=type(escalation),
        )
        report = await handle.result()

    assert report.status == "Partial"
    assert {t.id: t.status for t in report.tasks} == {
        "broken": "skipped",
        "child": "skipped",
        "fine": "passed",
    }
    assert "depends on broken" in next(t for t in report.tasks if t.id == "child").last_error
    assert branch_log(report) == ["fine: Task fine"]
    markdown = report.to_markdown()
    assert "### Final Status: Partial" in markdown
    assert "Total Tasks: 1 completed / 3 total (2 skipped)" in markdown
    assert "→ skip" in markdown


async def test_abort_ends_partial_with_finished_work_on_the_branch(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    plan = write_plan(
        tmp_path,
        {
            "max_parallel": 1,
            "tasks": [
                shell_task("first", "echo 1 > one.txt"),
                shell_task("broken", "exit 1", depends_on=["first"]),
                shell_task("never", "echo 3 > three.txt", depends_on=["broken"]),
            ],
        },
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        escalation = await pending_escalation(handle)
        await handle.execute_update(
            "resolve_escalation",
            Resolution(escalation_id=escalation.id, action=Action.ABORT),
            result_type=type(escalation),
        )
        report = await handle.result()

    assert report.status == "Partial"
    assert branch_log(report) == ["first: Task first"]
    # Never started, and never will: the report says so (not "pending").
    assert {t.id: t.status for t in report.tasks}["never"] == "not_run"
    assert {p.name: p.status for p in report.phases}["review"] == "not_run"
    # No task worktree is left behind.
    assert worktrees(report) == []


async def test_invalid_resolutions_are_rejected_and_change_nothing(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path, {"tasks": [shell_task("broken", "exit 1")]})
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        escalation = await pending_escalation(handle)
        with pytest.raises(WorkflowUpdateFailedError) as unknown:
            await handle.execute_update(
                "resolve_escalation", Resolution(escalation_id="nope", action=Action.SKIP)
            )
        assert "no escalation 'nope'" in str(unknown.value.cause)
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update("approve", ApprovalAnswer())  # nothing to approve
        progress = await handle.query(ExecutionWorkflow.progress)
        assert [e.state for e in progress.escalations] == ["pending"]

        await handle.execute_update(
            "resolve_escalation", Resolution(escalation_id=escalation.id, action=Action.SKIP)
        )
        with pytest.raises(WorkflowUpdateFailedError) as twice:
            await handle.execute_update(
                "resolve_escalation", Resolution(escalation_id=escalation.id, action=Action.SKIP)
            )
        assert "already answered" in str(twice.value.cause)
        report = await handle.result()
    assert report.status == "Partial"


async def test_specialist_crashing_twice_then_succeeding_completes(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path, {"tasks": [shell_task("t", "echo ok > ok.txt")]})
    # As the worker builds it: it makes the task's worktree first when the request asks.
    real = CommandSpecialistActivities(
        tmp_path / "artifacts", WorktreeActivities(tmp_path / "workspaces")
    )

    @activity.defn(name="run_command_specialist")
    async def flaky(request: SpecialistRequest) -> SpecialistResult:
        if activity.info().attempt < 3:
            raise RuntimeError("worker lost its mind")
        return await real.run(request)

    async with running_worker(client, task_queue, tmp_path, [flaky]):
        report = await (await start(client, task_queue, plan)).result()
    assert report.status == "Complete"
    assert report.tasks[0].attempts == 1  # activity retries are not fix-loop attempts


async def test_specialist_crashing_three_times_escalates(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path, {"tasks": [shell_task("t", "echo ok > ok.txt")]})

    @activity.defn(name="run_command_specialist")
    async def broken(request: SpecialistRequest) -> SpecialistResult:
        raise ApplicationError("cannot start the agent")

    async with running_worker(client, task_queue, tmp_path, [broken]):
        handle = await start(client, task_queue, plan)
        escalation = await pending_escalation(handle)
        assert escalation.last_error.startswith("specialist shell failed: ")
        assert "cannot start the agent" in escalation.last_error
        await handle.execute_update(
            "resolve_escalation", Resolution(escalation_id=escalation.id, action=Action.ABORT)
        )
        report = await handle.result()
    assert report.status == "Partial"


async def test_approvals_before_start_and_before_handoff(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    plan = write_plan(
        tmp_path,
        {
            "approval": {"before_start": True, "before_handoff": True},
            "tasks": [shell_task("t", "echo ok > ok.txt")],
        },
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        progress = await wait_for(handle, lambda p: p.pending_approval is not None)
        assert progress.status.value == "awaiting_approval"
        assert progress.pending_approval.name == "before_start"  # type: ignore[union-attr]
        assert all(t.status == "pending" for t in progress.tasks)
        await handle.execute_update("approve", ApprovalAnswer(by="lead"))

        progress = await wait_for(
            handle,
            lambda p: (
                p.pending_approval is not None and p.pending_approval.name == "before_handoff"
            ),
        )
        assert progress.tasks[0].status == "passed"
        await handle.execute_update("approve", ApprovalAnswer(reason="looks good"))
        report = await handle.result()
    assert report.status == "Complete"
    assert [(a.name, a.state) for a in report.approvals] == [
        ("before_start", "approved"),
        ("before_handoff", "approved"),
    ]


async def test_reject_before_handoff_keeps_the_work_and_ends_partial(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    plan = write_plan(
        tmp_path,
        {"approval": {"before_handoff": True}, "tasks": [shell_task("t", "echo ok > ok.txt")]},
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        await wait_for(handle, lambda p: p.pending_approval is not None)
        await handle.execute_update("reject", ApprovalAnswer(reason="not this week"))
        report = await handle.result()
    assert report.status == "Partial"
    assert branch_log(report) == ["t: Task t"]
    assert any("not this week" in todo for todo in report.human_todo)


async def test_cancel_mid_run_keeps_finished_tasks_and_leaves_nothing_behind(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    slow = sleeper()  # seen from outside: in the jail its pid is another one
    plan = write_plan(
        tmp_path,
        {
            "max_parallel": 1,
            "tasks": [
                shell_task("quick", "echo 1 > one.txt"),
                shell_task("slow", slow, depends_on=["quick"]),
            ],
        },
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        await wait_for(handle, lambda p: {t.id: t.status for t in p.tasks}["slow"] == "running")
        await until_running(slow)
        await handle.cancel()
        report = await handle.result()

    assert report.status == "Cancelled"
    assert branch_log(report) == ["quick: Task quick"]
    assert worktrees(report) == []
    assert running(slow) == []
    # The task that was running reads so, not `pending`; what did not run says why.
    assert {t.id: t.status for t in report.tasks} == {"quick": "passed", "slow": "interrupted"}
    phases = {p.name: p for p in report.phases}
    assert phases["implementation"].status == "interrupted"
    assert phases["review"].summary == "not run (cancelled)"
    assert any("Task slow (Task slow) was interrupted" in item for item in report.human_todo)


async def test_unanswered_escalation_times_out_and_the_plan_decides(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    plan = write_plan(
        tmp_path,
        {
            "escalation_timeout": "2s",
            "on_escalation_timeout": "skip",
            "tasks": [shell_task("broken", "exit 1"), shell_task("fine", "echo y > y.txt")],
        },
    )
    async with running_worker(client, task_queue, tmp_path):
        report = await (await start(client, task_queue, plan)).result()
    assert report.status == "Partial"
    assert {t.id: t.status for t in report.tasks} == {"broken": "skipped", "fine": "passed"}
    [escalation] = report.escalations
    assert escalation.state == "timed_out"
    assert escalation.answer is not None and escalation.answer.action == Action.SKIP
    assert any("Nobody answered escalation" in todo for todo in report.human_todo)


async def test_on_skip_escalate_asks_about_each_dependant(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    plan = write_plan(
        tmp_path,
        {
            "on_skip": "escalate",
            "tasks": [
                shell_task("broken", "exit 1"),
                shell_task("child", "echo x > x.txt", depends_on=["broken"]),
            ],
        },
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        first = await pending_escalation(handle)
        assert first.task_id == "broken"
        await handle.execute_update(
            "resolve_escalation", Resolution(escalation_id=first.id, action=Action.SKIP)
        )
        progress = await wait_for(
            handle, lambda p: any(e.task_id == "child" for e in p.pending_escalations)
        )
        [second] = progress.pending_escalations
        assert "did not pass" in second.reason
        # Run it anyway: it does not need its dependency's work.
        await handle.execute_update(
            "resolve_escalation", Resolution(escalation_id=second.id, action=Action.RETRY)
        )
        report = await handle.result()
    assert {t.id: t.status for t in report.tasks} == {"broken": "skipped", "child": "passed"}
    assert report.status == "Partial"


def test_progress_reports_percent_and_critical_path_remaining() -> None:
    from coordinator.report import Progress, TaskState

    progress = Progress(
        execution_id="e",
        plan_name="p",
        phases=[],
        tasks=[
            TaskState(id="a", title="A", status="passed"),
            TaskState(id="b", title="B", depends_on=["a"], status="running"),
            TaskState(id="c", title="C", depends_on=["b"]),
            TaskState(id="d", title="D", depends_on=["c"]),
        ],
    )
    dumped = progress.model_dump()
    assert (dumped["percent"], dumped["critical_path_remaining"]) == (25, 3)


async def test_a_retried_task_waits_for_a_free_slot(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    log = tmp_path / "times.log"
    stuck = (
        f"echo stuck start $(date +%s.%N) >> {log}; "
        'test -n "$COORD_GUIDANCE" || exit 1; '
        f"echo ok > stuck.txt; echo stuck end $(date +%s.%N) >> {log}"
    )
    plan = write_plan(
        tmp_path,
        {
            **UNJAILED,
            "max_parallel": 1,
            "tasks": [
                shell_task("stuck", stuck),
                timed("slow", log, 3, depends_on=[]),
                timed("later", log, 1, depends_on=[]),
            ],
        },
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        escalation = await pending_escalation(handle)
        # `slow` holds the only slot now; the answer must not start a second specialist.
        await wait_for(handle, lambda p: {t.id: t.status for t in p.tasks}["slow"] == "running")
        await handle.execute_update(
            "resolve_escalation",
            Resolution(escalation_id=escalation.id, action=Action.RETRY, guidance="go"),
        )
        report = await handle.result()
    assert report.status == "Complete", report.to_markdown()
    starts = [
        float(line.split()[2]) for line in log.read_text().splitlines() if "stuck start" in line
    ]
    spans = times(log)  # for `stuck`: its last run, the one after the answer
    assert starts[-1] >= spans["slow"][1]  # the retry ran after `slow` freed the slot
    ordered = sorted(spans.values())
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in pairwise(ordered))


async def test_a_broken_git_step_escalates_instead_of_failing_the_execution(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    plan = write_plan(
        tmp_path,
        # Without the jail, whose read-only git metadata would not let it switch branches.
        {**UNJAILED, "tasks": [shell_task("rogue", "git checkout -q -b elsewhere; exit 1")]},
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        escalation = await pending_escalation(handle)
        assert "no longer on its task branch" in escalation.last_error
        await handle.execute_update(
            "resolve_escalation", Resolution(escalation_id=escalation.id, action=Action.ABORT)
        )
        report = await handle.result()
    assert report.status == "Partial"
    assert worktrees(report) == []


async def test_a_skipped_failing_layer_gate_leaves_work_for_a_human(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    command_agent(tmp_path / "agents", "noop-fixer", "true")
    plan = write_plan(
        tmp_path,
        {
            "specialists_dir": "./agents",
            "fixer": "noop-fixer",
            "layer_gates": [{"name": "never", "run": "false"}],
            "tasks": [shell_task("t", "echo x > x.txt", layer="core")],
        },
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        escalation = await pending_escalation(handle)
        assert escalation.id.startswith("implementation:core:")
        await handle.execute_update(
            "resolve_escalation", Resolution(escalation_id=escalation.id, action=Action.SKIP)
        )
        report = await handle.result()
    assert report.status == "Partial"
    assert any("layer gate never (core)" in todo for todo in report.human_todo)


@pytest.mark.parametrize("layer_gates", [False, True])
async def test_a_task_that_passes_is_one_activity_unless_layer_gates_hold_the_branch(
    client: Client, task_queue: str, tmp_path: Path, layer_gates: bool
) -> None:
    # Its gates and its landing run in its specialist's activity (workflows/task_turn.py);
    # with layer gates, whose loop holds the branch still, it lands in an activity of its own.
    make_repo(tmp_path / "repo")
    gate = [{"name": "made", "run": "cat a.txt b.txt 2>/dev/null | grep -q ."}]
    plan = write_plan(
        tmp_path,
        {
            **(
                {"layer_gates": [{"name": "both", "run": "test -f a.txt -a -f b.txt"}]}
                if layer_gates
                else {}
            ),
            "tasks": [
                shell_task(t, f"echo {t} > {t}.txt", gates=gate, layer="L") for t in ("a", "b")
            ],
        },
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        report = await handle.result()

    assert report.status == "Complete", report.to_markdown()
    assert sorted(branch_log(report)) == ["a: Task a", "b: Task b"]
    assert [(g.name, g.passed) for t in report.tasks for g in t.gates] == [("made", True)] * 2
    steps = [a.type for a in await activities_of(client, handle.id)]
    task_steps = [s for s in steps if s in ("run_command_specialist", "run_gate", "land_task")]
    expected = {"run_command_specialist": 2, "run_gate": int(layer_gates)}
    expected["land_task"] = 2 if layer_gates else 0
    assert {s: task_steps.count(s) for s in expected} == expected
