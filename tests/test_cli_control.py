"""Answering an execution from the command line: `coord resolve`, `approve`, `reject`, and
the question `coord watch` / `coord run --wait` / `coord status` print when one waits.

The CLI runs as a real process against a real server. The execution it talks to is a small
stand-in defined here that keeps the contract of the real ExecutionWorkflow (its name, the
`progress` query, the `resolve_escalation` / `approve` / `reject` updates with validators and
signals of the same names), so these tests pin the CLI side of that contract; pointed at the
real workflow, they check both sides.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from coordinator.escalation import Action, Approval, ApprovalAnswer, Escalation, Resolution
from coordinator.execution import ExecutionInput, build_execution_input
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
from coordinator.validation import validate_plan_file
from tests.conftest import NAMESPACE

COORD = [sys.executable, "-m", "cli.main"]
STUCK = "stuck"  # tasks whose id starts with this escalate in the stand-in
# A failing gate's output: 30 lines, an escape sequence a terminal would obey, a summary.
OUTPUT_TAIL = (
    "\n".join(f"collected line {i}" for i in range(1, 31))
    + "\n\x1b[31mFAILED\x1b[0m tests/test_math.py::test_add - AssertionError: 2 != 3\n"
)


# The stand-in ExecutionWorkflow ------------------------------------------------------------


@workflow.defn(name="ExecutionWorkflow")
class StandInExecution:
    """Every task passes except those named `stuck*`, which escalate (3 attempts made); with
    `approval.before_start` an approval is pending too. It ends when nothing is pending:
    Complete, or Partial after an abort, a skip or a rejection."""

    @workflow.init
    def __init__(self, request: ExecutionInput) -> None:
        tasks: list[TaskState] = []
        escalations: list[Escalation] = []
        for t in request.plan.tasks:
            stuck = t.id.startswith(STUCK)
            tasks.append(
                TaskState(
                    id=t.id,
                    title=t.title,
                    specialist=t.specialist,
                    status="escalated" if stuck else "passed",
                    attempts=3 if stuck else 1,
                    last_error="gate tests failed (exit 1)" if stuck else "",
                    gates=[
                        GateSummary(
                            name="tests", level="task", scope=t.id, passed=not stuck, exit_code=1
                        )
                    ],
                )
            )
            if stuck:
                escalations.append(
                    Escalation(
                        id=f"{t.id}-1",
                        phase="implementation",
                        task_id=t.id,
                        reason="gate tests failed on 3 attempts",
                        question=f"Task '{t.id}' still fails its gates. Retry with guidance, "
                        "skip it, or abort the execution?",
                        last_error="gate tests failed (exit 1)",
                        output_tail=OUTPUT_TAIL,
                        attempts=3,
                        recommended=["retry with guidance on what the test expects"],
                        artifacts=[f"/artifacts/{request.execution_id}/{t.id}/gate-tests.log"],
                    )
                )
        approvals = []
        if request.plan.approval.before_start:
            approvals.append(
                Approval(
                    name="before_start",
                    question=f"Start implementing the {len(tasks)} tasks of {request.plan.name}?",
                )
            )
        self._progress = Progress(
            execution_id=request.execution_id,
            plan_name=request.plan.name,
            phase="implementation",
            phases=[PhaseState(name=name) for name in PHASES],
            tasks=tasks,
            workspace=Workspace(
                path="/workspaces/x",
                branch=f"coord/{request.execution_id}",
                base_branch="main",
                base_commit="0" * 40,
                head_commit="1" * 40,
            ),
            escalations=escalations,
            approvals=approvals,
        )
        self._partial = False  # something was skipped or refused
        self._stopped = False  # abort or reject: end now
        self._refresh_status()

    @workflow.run
    async def run(self, request: ExecutionInput) -> ExecutionReport:
        await workflow.wait_condition(
            lambda: (
                self._stopped
                or (not self._progress.pending_escalations and not self._progress.pending_approval)
            )
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._progress.status = (
            ExecutionStatus.PARTIAL if self._partial else ExecutionStatus.COMPLETED
        )
        return ExecutionReport.from_progress(
            self._progress, human_todo=[], finished_at=workflow.now()
        )

    @workflow.query
    def progress(self) -> Progress:
        return self._progress

    @workflow.update(name="resolve_escalation")
    def resolve_escalation(self, resolution: Resolution) -> Escalation:
        return self._resolve(resolution)

    @resolve_escalation.validator
    def _validate_resolution(self, resolution: Resolution) -> None:
        self._pending_escalation(resolution)

    @workflow.signal(name="resolve_escalation")
    def resolve_escalation_signal(self, resolution: Resolution) -> None:
        try:
            self._resolve(resolution)
        except ApplicationError as err:
            workflow.logger.warning("resolution ignored: %s", err)

    def _resolve(self, resolution: Resolution) -> Escalation:
        escalation = self._pending_escalation(resolution)
        escalation.state = "answered"
        escalation.answer = resolution
        escalation.answered_at = workflow.now()
        task = next(t for t in self._progress.tasks if t.id == escalation.task_id)
        if resolution.action == Action.RETRY:
            task.status, task.attempts = "passed", 1
        else:
            task.status = "skipped"
            self._partial = True
            self._stopped = resolution.action == Action.ABORT
        self._refresh_status()
        return escalation

    @workflow.update(name="approve")
    def approve(self, answer: ApprovalAnswer) -> Approval:
        return self._answer_approval("approved", answer)

    @approve.validator
    def _validate_approve(self, answer: ApprovalAnswer) -> None:
        self._waiting_approval()

    @workflow.update(name="reject")
    def reject(self, answer: ApprovalAnswer) -> Approval:
        return self._answer_approval("rejected", answer)

    @reject.validator
    def _validate_reject(self, answer: ApprovalAnswer) -> None:
        self._waiting_approval()

    @workflow.signal(name="approve")
    def approve_signal(self, answer: ApprovalAnswer) -> None:
        if self._progress.pending_approval:
            self._answer_approval("approved", answer)

    @workflow.signal(name="reject")
    def reject_signal(self, answer: ApprovalAnswer) -> None:
        if self._progress.pending_approval:
            self._answer_approval("rejected", answer)

    # The refusals word for word as the real workflow says them.
    def _pending_escalation(self, resolution: Resolution) -> Escalation:
        """The escalation a resolution answers; refuses (raises) anything else."""
        pending = self._progress.pending_escalations
        if resolution.escalation_id is None:
            if len(pending) == 1:
                return pending[0]
            ids = ", ".join(e.id for e in pending) or "none"
            raise ApplicationError(
                f"name the escalation to answer: {len(pending)} are pending ({ids})",
                non_retryable=True,
            )
        for escalation in self._progress.escalations:
            if escalation.id == resolution.escalation_id:
                if escalation.state != "pending":
                    raise ApplicationError(
                        f"escalation {escalation.id} was already {escalation.state}",
                        non_retryable=True,
                    )
                return escalation
        ids = ", ".join(e.id for e in pending) or "none"
        raise ApplicationError(
            f"no escalation '{resolution.escalation_id}' (pending: {ids})", non_retryable=True
        )

    def _waiting_approval(self) -> Approval:
        approval = self._progress.pending_approval
        if approval is None:
            raise ApplicationError("no approval is pending", non_retryable=True)
        return approval

    def _answer_approval(self, state: str, answer: ApprovalAnswer) -> Approval:
        approval = self._waiting_approval()
        approval.state = "approved" if state == "approved" else "rejected"
        approval.answer = answer
        approval.answered_at = workflow.now()
        if approval.state == "rejected":
            self._partial = self._stopped = True
        self._refresh_status()
        return approval

    def _refresh_status(self) -> None:
        if self._progress.pending_escalations:
            self._progress.status = ExecutionStatus.ESCALATED
        elif self._progress.pending_approval:
            self._progress.status = ExecutionStatus.AWAITING_APPROVAL
        else:
            self._progress.status = ExecutionStatus.RUNNING


# Fixtures and helpers ----------------------------------------------------------------------


async def coord(*args: str, env: dict[str, str], timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *COORD,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    # No input, good or bad, ends in a traceback.
    assert b"Traceback" not in err, err.decode()
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.fixture
def cli_env(server_address: str, task_queue: str, tmp_path: Path) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "COORD_"))}
    return {
        **inherited,
        "TEMPORAL_ADDRESS": server_address,
        "TEMPORAL_NAMESPACE": NAMESPACE,
        "COORD_TASK_QUEUE": task_queue,
        "COORD_WORKSPACE_ROOT": str(tmp_path / "workspaces"),
        "COORD_UI_URL": "http://ui.example:8233",
    }


@pytest.fixture
async def worker(client: Client, task_queue: str) -> AsyncIterator[None]:
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[StandInExecution],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        yield


def write_plan(folder: Path, task_ids: list[str], *, before_start: bool = False) -> Path:
    (folder / "repo").mkdir(exist_ok=True)
    (folder / "repo" / "README.md").write_text("a repository\n")
    lines = [
        "name: control-test",
        "repository: ./repo",
        f"approval: {{before_start: {str(before_start).lower()}}}",
        "tasks:",
    ]
    lines += [
        f"  - {{id: {t}, title: Task {t}, specialist: shell, prompt: 'true'}}" for t in task_ids
    ]
    plan = folder / "plan.yaml"
    plan.write_text("\n".join(lines) + "\n")
    return plan


async def start(
    client: Client,
    task_queue: str,
    folder: Path,
    task_ids: list[str],
    *,
    before_start: bool = False,
) -> WorkflowHandle[StandInExecution, ExecutionReport]:
    plan_file = write_plan(folder, task_ids, before_start=before_start)
    plan = validate_plan_file(plan_file).plan
    assert plan is not None
    eid = f"control-{uuid.uuid4().hex[:8]}"
    request = build_execution_input(plan, plan_file, execution_id=eid)
    return await client.start_workflow(
        StandInExecution.run,
        request,
        id=eid,
        task_queue=task_queue,
        execution_timeout=timedelta(minutes=5),
    )


async def result(handle: WorkflowHandle[StandInExecution, ExecutionReport]) -> ExecutionReport:
    return await asyncio.wait_for(handle.result(), 30)


# Resolve -----------------------------------------------------------------------------------


async def test_resolve_the_only_pending_escalation_without_naming_it(
    client: Client, task_queue: str, cli_env: dict[str, str], worker: None, tmp_path: Path
) -> None:
    handle = await start(client, task_queue, tmp_path, ["ok", "stuck"])
    eid = handle.id

    code, out, err = await coord(
        "resolve", eid, "--retry", "--guidance", "expect 3, not 2", "--by", "ada", env=cli_env
    )
    assert code == 0, err
    assert "resolved escalation stuck-1 (task stuck): retry" in out
    assert (
        "task stuck is tried again with a fresh set of attempts; the specialist gets your guidance"
        in out
    )

    report = await result(handle)
    assert report.status == "Complete"
    (escalation,) = report.escalations
    assert escalation.state == "answered"
    assert escalation.answer == Resolution(
        escalation_id="stuck-1", action=Action.RETRY, guidance="expect 3, not 2", by="ada"
    )


async def test_resolve_by_id_and_the_validator_refusals(
    client: Client, task_queue: str, cli_env: dict[str, str], worker: None, tmp_path: Path
) -> None:
    handle = await start(client, task_queue, tmp_path, ["stuck-a", "ok", "stuck-b"])
    eid = handle.id

    # Two pending: the id is needed, and the message lists both with their questions.
    code, out, err = await coord("resolve", eid, "--skip", env=cli_env)
    assert code == 2
    assert f"error: {eid} has 2 pending escalations; say which one" in err
    assert "stuck-a-1  (task stuck-a) Task 'stuck-a' still fails its gates" in err
    assert "stuck-b-1  (task stuck-b) Task 'stuck-b' still fails its gates" in err

    code, out, err = await coord("resolve", eid, "stuck-a-1", "--skip", "--json", env=cli_env)
    assert code == 0, err
    answered = Escalation.model_validate_json(out)
    assert (answered.id, answered.state) == ("stuck-a-1", "answered")
    assert answered.answer is not None and answered.answer.action == Action.SKIP

    # The workflow's validator refuses, the CLI prints its reason: unknown, already answered.
    code, out, err = await coord("resolve", eid, "nope-9", "--abort", env=cli_env)
    assert (code, err.strip()) == (
        2,
        "error: no escalation 'nope-9' (pending: stuck-b-1)",
    )
    code, out, err = await coord("resolve", eid, "stuck-a-1", "--retry", env=cli_env)
    assert (code, err.strip()) == (2, "error: escalation stuck-a-1 was already answered")

    # One left: no id needed.
    code, out, err = await coord("resolve", eid, "--abort", env=cli_env)
    assert code == 0, err
    assert "resolved escalation stuck-b-1 (task stuck-b): abort" in out
    assert f"the execution ends Partial; the work done so far stays on branch coord/{eid}" in out

    report = await result(handle)
    assert report.status == "Partial"
    code, out, err = await coord("resolve", eid, "--retry", env=cli_env)
    assert (code, err.strip()) == (
        2,
        f"error: {eid} has already ended (completed); there is nothing to resolve",
    )


async def test_resolve_when_nothing_is_pending(
    client: Client, task_queue: str, cli_env: dict[str, str], worker: None, tmp_path: Path
) -> None:
    handle = await start(client, task_queue, tmp_path, ["ok"], before_start=True)
    code, _out, err = await coord("resolve", handle.id, "--retry", env=cli_env)
    assert code == 2
    assert f"{handle.id} has no pending escalation (status awaiting_approval)" in err
    await handle.signal("approve", ApprovalAnswer(reason="by signal"))
    assert (await result(handle)).status == "Complete"


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
    handle = await start(client, task_queue, tmp_path, ["ok"], before_start=True)
    eid = handle.id

    code, out, err = await coord("status", eid, env=cli_env)
    assert code == 0, err
    assert f"{eid} is waiting on a human: approval before_start" in out
    assert "question:  Start implementing the 1 tasks of control-test?" in out
    assert f"coord approve {eid}" in out
    assert f'coord reject {eid} --reason "..."' in out

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
    handle = await start(client, task_queue, tmp_path, ["ok"], before_start=True)
    eid = handle.id

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


async def test_approve_or_reject_with_nothing_pending_says_so(
    client: Client, task_queue: str, cli_env: dict[str, str], worker: None, tmp_path: Path
) -> None:
    handle = await start(client, task_queue, tmp_path, ["stuck"])
    eid = handle.id
    for verb in ("approve", "reject"):
        code, _out, err = await coord(verb, eid, "--reason", "why not", env=cli_env)
        assert (code, err.strip()) == (
            2,
            "error: no approval is pending",
        ), verb
    await handle.signal("resolve_escalation", Resolution(action=Action.SKIP))
    assert (await result(handle)).status == "Partial"


# Waiting on a human: watch, run --wait, status ---------------------------------------------


async def test_watch_stops_with_the_question_and_the_commands_that_answer(
    client: Client, task_queue: str, cli_env: dict[str, str], worker: None, tmp_path: Path
) -> None:
    handle = await start(client, task_queue, tmp_path, ["ok", "stuck"])
    eid = handle.id

    code, out, err = await coord("watch", eid, env=cli_env)
    assert code == 3, err
    assert f"{eid} is waiting on a human: 1 escalation" in out
    assert "escalation stuck-1 (task stuck, phase implementation)" in out
    assert "reason:    gate tests failed on 3 attempts" in out
    assert "question:  Task 'stuck' still fails its gates." in out
    assert "attempts:  3" in out
    assert "last error: gate tests failed (exit 1)" in out
    # The end of the output, where the failure is, without terminal escapes.
    assert "| FAILED tests/test_math.py::test_add - AssertionError: 2 != 3" in out
    assert "... 11 earlier lines, see the log" in out
    assert "collected line 11\n" not in out
    assert "\x1b" not in out
    assert "- retry with guidance on what the test expects" in out
    assert f"/artifacts/{eid}/stuck/gate-tests.log" in out
    assert f'coord resolve {eid} stuck-1 --retry --guidance "..."' in out
    assert f"coord resolve {eid} stuck-1 --skip" in out
    assert f"coord resolve {eid} stuck-1 --abort" in out
    assert (
        f"temporal workflow update execute --workflow-id {eid} --name resolve_escalation "
        """--input '{"escalation_id": "stuck-1", "action": "retry", "guidance": "..."}'"""
    ) in out

    # The same in `coord status`, with the task's gates and last error in the tables.
    code, out, err = await coord("status", eid, env=cli_env)
    assert code == 0, err
    assert "Waiting on a human" in out
    assert "gates passed: task 1/2" in out
    assert "stuck (escalated, attempt 3): gate tests failed (exit 1)" in out
    assert f'coord resolve {eid} stuck-1 --retry --guidance "..."' in out

    # Answered, `watch` follows it to its end.
    code, _out, err = await coord("resolve", eid, "--retry", env=cli_env)
    assert code == 0, err
    code, out, err = await coord("watch", eid, env=cli_env)
    assert code == 0, err
    assert "### Final Status: Complete" in out


async def test_run_wait_exits_3_with_the_question_or_the_progress_json(
    cli_env: dict[str, str], worker: None, tmp_path: Path
) -> None:
    plan = write_plan(tmp_path, ["ok", "stuck"])
    eid = f"control-{uuid.uuid4().hex[:8]}"
    code, out, err = await coord("run", str(plan), "--wait", "--id", eid, env=cli_env)
    assert code == 3, err
    assert f"started execution {eid}" in out
    assert f'coord resolve {eid} stuck-1 --retry --guidance "..."' in out

    code, out, err = await coord("status", eid, "--json", env=cli_env)
    assert code == 0, err
    progress = Progress.model_validate_json(out)
    assert progress.status == ExecutionStatus.ESCALATED
    assert [e.id for e in progress.pending_escalations] == ["stuck-1"]

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
    handle = await start(client, task_queue, tmp_path, ["stuck"], before_start=True)
    await handle.signal("resolve_escalation", Resolution(action=Action.RETRY, guidance="again"))
    await handle.signal("reject", ApprovalAnswer(reason="no"))
    report = await result(handle)
    assert report.status == "Partial"
    assert report.escalations[0].answer is not None
    assert report.escalations[0].answer.guidance == "again"
    assert report.approvals[0].state == "rejected"
