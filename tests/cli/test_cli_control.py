"""Answering an execution from the command line: `coord resolve`, `approve`, `reject`, and
the question `coord watch` / `coord run --wait` / `coord status` print when one waits.

The CLI runs as a real process against a real server, and the execution it talks to is the
real ExecutionWorkflow run by the real worker: the states to answer come from real plans
(a task whose gate fails three times escalates; `approval.before_start` asks first), and the
refusals the CLI prints are the workflow's own validators speaking. So these tests pin both
sides of the contract: the `progress` query, the `resolve_escalation` / `approve` / `reject`
updates and the signals of the same names.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle

from coordinator.escalation import Action, Approval, ApprovalAnswer, Escalation, Resolution
from coordinator.report import ExecutionReport, ExecutionStatus, Progress
from tests.cli_support import coord
from tests.engine_support import (
    make_repo,
    pending_escalation,
    shell_task,
    start,
    wait_for,
    write_plan,
)
from workflows.execution import ExecutionWorkflow

Handle = WorkflowHandle[ExecutionWorkflow, ExecutionReport]

# The gate of a stuck task. It fails like a test run does (30 lines, an escape sequence a
# terminal would obey, a summary) until a retry hands the task a human's guidance: the task
# writes that guidance to <task>.guidance, and the gate passes once the file is not empty.
GATE_SH = """\
test -s "$1.guidance" && exit 0
for i in $(seq 1 30); do echo "collected line $i"; done
printf '\\033[31mFAILED\\033[0m tests/test_math.py::test_add - AssertionError: 2 != 3\\n'
exit 1
"""
QUESTION = "still fails after 3 attempts: retry with guidance, skip it, or abort the execution?"


def stuck(task_id: str) -> dict[str, Any]:
    """Fails its gate on all 3 attempts, then escalates; a retry with guidance passes."""
    return shell_task(
        task_id,
        f'printf %s "$COORD_GUIDANCE" > {task_id}.guidance',
        depends_on=[],
        gates=[{"name": "tests", "run": f"sh gate.sh {task_id}"}],
    )


def ok(task_id: str = "ok") -> dict[str, Any]:
    return shell_task(
        task_id,
        f"echo {task_id} > {task_id}.txt",
        depends_on=[],
        gates=[{"name": "tests", "run": f"test -f {task_id}.txt"}],
    )


def plan_file(folder: Path, tasks: list[dict[str, Any]], **plan: Any) -> Path:
    make_repo(folder / "repo", {"README.md": "# demo\n", "gate.sh": GATE_SH})
    return write_plan(folder, {"tasks": tasks, **plan})


# Fixtures and helpers ----------------------------------------------------------------------


async def approval_pending(handle: Handle, name: str = "before_start") -> Progress:
    return await wait_for(
        handle, lambda p: p.pending_approval is not None and p.pending_approval.name == name
    )


async def result(handle: Handle) -> ExecutionReport:
    return await asyncio.wait_for(handle.result(), 60)


# Resolve -----------------------------------------------------------------------------------


async def test_resolve_the_only_pending_escalation_without_naming_it(
    client: Client, task_queue: str, cli_env: dict[str, str], worker: None, tmp_path: Path
) -> None:
    handle = await start(client, task_queue, plan_file(tmp_path, [ok(), stuck("stuck")]))
    eid = handle.id
    escalation = await pending_escalation(handle)
    assert escalation.id == "stuck:1"

    code, out, err = await coord(
        "resolve", eid, "--retry", "--guidance", "expect 3, not 2", "--by", "ada", env=cli_env
    )
    assert code == 0, err
    assert "resolved escalation stuck:1 (task stuck): retry" in out
    assert (
        "task stuck is tried again with a fresh set of attempts; the specialist gets your guidance"
        in out
    )

    report = await result(handle)
    assert report.status == "Complete"
    (answered,) = report.escalations
    assert answered.state == "answered"
    assert answered.answer == Resolution(
        escalation_id="stuck:1", action=Action.RETRY, guidance="expect 3, not 2", by="ada"
    )


async def test_resolve_by_id_and_the_validator_refusals(
    client: Client, task_queue: str, cli_env: dict[str, str], worker: None, tmp_path: Path
) -> None:
    plan = plan_file(tmp_path, [stuck("stuck-a"), stuck("stuck-b")], max_parallel=2)
    handle = await start(client, task_queue, plan)
    eid = handle.id
    progress = await wait_for(handle, lambda p: len(p.pending_escalations) == 2)
    # Numbered in the order they were raised, which the two parallel tasks do not fix.
    ids = {e.task_id: e.id for e in progress.pending_escalations}
    a, b = ids["stuck-a"], ids["stuck-b"]

    # Two pending: the id is needed, and the message lists both with their questions.
    code, out, err = await coord("resolve", eid, "--skip", env=cli_env)
    assert code == 2
    assert f"error: {eid} has 2 pending escalations; say which one" in err
    assert f"{a}  (task stuck-a) Task stuck-a (Task stuck-a) {QUESTION}" in err
    assert f"{b}  (task stuck-b) Task stuck-b (Task stuck-b) {QUESTION}" in err

    code, out, err = await coord("resolve", eid, a, "--skip", "--json", env=cli_env)
    assert code == 0, err
    answered = Escalation.model_validate_json(out)
    assert (answered.id, answered.state) == (a, "answered")
    assert answered.answer is not None and answered.answer.action == Action.SKIP

    # The workflow's validator refuses, the CLI prints its reason: unknown, already answered.
    code, out, err = await coord("resolve", eid, "nope-9", "--abort", env=cli_env)
    assert (code, err.strip()) == (2, f"error: no escalation 'nope-9' (pending: {b})")
    code, out, err = await coord("resolve", eid, a, "--retry", env=cli_env)
    assert (code, err.strip()) == (2, f"error: escalation {a} was already answered")

    # One left: no id needed.
    code, out, err = await coord("resolve", eid, "--abort", env=cli_env)
    assert code == 0, err
    assert f"resolved escalation {b} (task stuck-b): abort" in out
    assert f"the execution ends Partial; the work done so far stays on branch coord/{eid}" in out

    report = await result(handle)
    assert report.status == "Partial"
    assert {t.id: t.status for t in report.tasks} == {"stuck-a": "skipped", "stuck-b": "failed"}
    code, out, err = await coord("resolve", eid, "--retry", env=cli_env)
    assert (code, err.strip()) == (
        2,
        f"error: {eid} has already ended (completed); there is nothing to resolve",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "choose exactly one of --retry, --skip, --abort"),
        (["--retry", "--skip"], "choose exactly one of --retry, --skip, --abort (got --retry and"),
        (["--skip", "--guidance", "try harder"], "--guidance goes with --retry only"),
        (["--abort", "--guidance", ""], "--guidance goes with --retry only"),
        (["--retry", "--guidance", "x" * 20_001], "guidance: String should have at most 20000"),
    ],
)
async def test_resolve_arguments_are_checked_first(
    cli_env: dict[str, str], args: list[str], message: str
) -> None:
    code, _out, err = await coord("resolve", "any-execution", "esc-1", *args, env=cli_env)
    assert code == 2
    assert f"error: {message}" in err
    assert err.count("\n") == 1


async def test_resolve_an_unknown_execution(cli_env: dict[str, str]) -> None:
    code, _out, err = await coord("resolve", "no-such-execution", "--skip", env=cli_env)
    assert code == 2
    assert "no execution with id 'no-such-execution'" in err


# Approve and reject ------------------------------------------------------------------------


async def test_approve(
    client: Client, task_queue: str, cli_env: dict[str, str], worker: None, tmp_path: Path
) -> None:
    plan = plan_file(tmp_path, [ok()], approval={"before_start": True})
    handle = await start(client, task_queue, plan)
    eid = handle.id
    await approval_pending(handle)

    code, out, err = await coord("status", eid, env=cli_env)
    assert code == 0, err
    assert f"{eid} is waiting on a human: approval before_start" in out
    assert f"question:  Start implementing 1 tasks on branch coord/{eid}?" in out
    assert f"coord approve {eid}" in out
    assert f'coord reject {eid} --reason "..."' in out

    # An approval is not an escalation: nothing to resolve.
    code, _out, err = await coord("resolve", eid, "--retry", env=cli_env)
    assert code == 2
    assert f"{eid} has no pending escalation (status awaiting_approval)" in err

    code, out, err = await coord(
        "approve", eid, "--reason", "looks right", "--by", "ada", env=cli_env
    )
    assert code == 0, err
    assert f"approved before_start for {eid}" in out
    assert "next: the execution goes on: implementation starts" in out

    report = await result(handle)
    assert report.status == "Complete"
    assert report.approvals[0].answer == ApprovalAnswer(reason="looks right", by="ada")


async def test_reject(
    client: Client, task_queue: str, cli_env: dict[str, str], worker: None, tmp_path: Path
) -> None:
    plan = plan_file(tmp_path, [ok()], approval={"before_start": True})
    handle = await start(client, task_queue, plan)
    eid = handle.id
    await approval_pending(handle)

    code, _out, err = await coord("reject", eid, env=cli_env)
    assert code == 2
    assert "Missing option '--reason'" in err
    code, _out, err = await coord("reject", eid, "--reason", "  ", env=cli_env)
    assert (code, err.strip()) == (2, "error: --reason must say why the execution is rejected")

    code, out, err = await coord("reject", eid, "--reason", "not this week", "--json", env=cli_env)
    assert code == 0, err
    approval = Approval.model_validate_json(out)
    assert (approval.name, approval.state) == ("before_start", "rejected")
    assert approval.answer is not None and approval.answer.reason == "not this week"

    assert (await result(handle)).status == "Partial"
    code, _out, err = await coord("approve", eid, env=cli_env)
    assert (code, err.strip()) == (
        2,
        f"error: {eid} has already ended (completed); there is nothing to approve",
    )


# Waiting on a human: watch, run --wait, status ---------------------------------------------


async def test_watch_stops_with_the_question_and_the_commands_that_answer(
    client: Client, task_queue: str, cli_env: dict[str, str], worker: None, tmp_path: Path
) -> None:
    handle = await start(client, task_queue, plan_file(tmp_path, [ok(), stuck("stuck")]))
    eid = handle.id

    code, out, err = await coord("watch", eid, env=cli_env)
    assert code == 3, err
    assert f"{eid} is waiting on a human: 1 escalation" in out
    assert "escalation stuck:1 (task stuck, phase implementation)" in out
    assert "reason:    3 attempts failed" in out
    assert f"question:  Task stuck (Task stuck) {QUESTION}" in out
    assert "attempts:  3" in out
    assert (
        "last error: gate tests failed: FAILED tests/test_math.py::test_add - "
        "AssertionError: 2 != 3"
    ) in out
    # The end of the output, where the failure is, without terminal escapes.
    assert "| FAILED tests/test_math.py::test_add - AssertionError: 2 != 3" in out
    assert "... 12 earlier lines, see the log" in out
    assert "collected line 11\n" not in out
    assert "collected line 12\n" in out
    assert "\x1b" not in out
    assert "- Read the last error and the gate logs listed under artifacts" in out
    (escalation,) = (await handle.query(ExecutionWorkflow.progress)).pending_escalations
    assert escalation.artifacts
    for log in escalation.artifacts:
        assert log.startswith(str(tmp_path / "artifacts"))
        assert f"    {log}\n" in out
    assert f'coord resolve {eid} stuck:1 --retry --guidance "..."' in out
    assert f"coord resolve {eid} stuck:1 --skip" in out
    assert f"coord resolve {eid} stuck:1 --abort" in out
    assert (
        f"temporal workflow update execute --workflow-id {eid} --name resolve_escalation "
        """--input '{"escalation_id": "stuck:1", "action": "retry", "guidance": "..."}'"""
    ) in out

    # The same in `coord status`, with the task's gates and last error in the tables.
    code, out, err = await coord("status", eid, env=cli_env)
    assert code == 0, err
    assert "Waiting on a human" in out
    assert "gates passed: task 1/2" in out
    assert "stuck (escalated, attempt 3): gate tests failed: FAILED" in out
    assert f'coord resolve {eid} stuck:1 --retry --guidance "..."' in out

    # An escalation is not an approval: the workflow's validator refuses both verbs.
    for verb in ("approve", "reject"):
        code, _out, err = await coord(verb, eid, "--reason", "why not", env=cli_env)
        assert (code, err.strip()) == (2, "error: no approval is pending"), verb

    # Answered, `watch` follows it to its end.
    code, _out, err = await coord("resolve", eid, "--retry", "--guidance", "fix it", env=cli_env)
    assert code == 0, err
    code, out, err = await coord("watch", eid, env=cli_env)
    assert code == 0, err
    assert "### Final Status: Complete" in out


async def test_run_wait_exits_3_with_the_question_or_the_progress_json(
    cli_env: dict[str, str], worker: None, tmp_path: Path
) -> None:
    plan = plan_file(tmp_path, [ok(), stuck("stuck")])
    eid = f"control-{uuid.uuid4().hex[:8]}"
    code, out, err = await coord("run", str(plan), "--wait", "--id", eid, env=cli_env)
    assert code == 3, err
    assert f"started execution {eid}" in out
    assert f'coord resolve {eid} stuck:1 --retry --guidance "..."' in out

    code, out, err = await coord("status", eid, "--json", env=cli_env)
    assert code == 0, err
    progress = Progress.model_validate_json(out)
    assert progress.status == ExecutionStatus.ESCALATED
    assert [e.id for e in progress.pending_escalations] == ["stuck:1"]

    eid2 = f"control-{uuid.uuid4().hex[:8]}"
    code, out, err = await coord("run", str(plan), "--wait", "--json", "--id", eid2, env=cli_env)
    assert code == 3, err
    progress = Progress.model_validate_json(out)
    assert progress.execution_id == eid2
    assert progress.status == ExecutionStatus.ESCALATED
    for execution_id in (eid, eid2):
        code, _out, err = await coord("resolve", execution_id, "--abort", env=cli_env)
        assert code == 0, err


async def test_signals_answer_like_the_updates(
    client: Client, task_queue: str, worker: None, tmp_path: Path
) -> None:
    """For `temporal workflow signal` users: the same payloads as signals."""
    plan = plan_file(
        tmp_path, [stuck("stuck")], approval={"before_start": True, "before_handoff": True}
    )
    handle = await start(client, task_queue, plan)
    await approval_pending(handle)
    await handle.signal("approve", ApprovalAnswer(reason="by signal"))
    await pending_escalation(handle)
    # A signal cannot be refused: one that answers nothing is logged and ignored.
    await handle.signal("resolve_escalation", Resolution(escalation_id="nope", action=Action.SKIP))
    await handle.signal("resolve_escalation", Resolution(action=Action.RETRY, guidance="again"))
    await approval_pending(handle, "before_handoff")
    await handle.signal("reject", ApprovalAnswer(reason="no"))
    report = await result(handle)
    assert report.status == "Partial"
    (escalation,) = report.escalations
    assert escalation.answer is not None
    assert (escalation.answer.action, escalation.answer.guidance) == (Action.RETRY, "again")
    assert [(a.name, a.state) for a in report.approvals] == [
        ("before_start", "approved"),
        ("before_handoff", "rejected"),
    ]
