"""Acting on executions: `coord cancel`, and the human answers (resolve, approve, reject).

The answers are updates on the execution's workflow, addressed by name (`resolve_escalation`,
`approve`, `reject`): the workflow validates them and says why it refuses one, and the
refusal is printed as it is (exit 2).
"""

from __future__ import annotations

import asyncio
import getpass
from typing import Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import FailureError
from temporalio.service import RPCError, RPCStatusCode

from cli.common import (
    AddressOption,
    ExecutionIdArgument,
    JsonOption,
    NamespaceOption,
    execution_handle,
    fail,
    run_async,
    settings_from,
)
from cli.exit_codes import ExitCode
from cli.follow import query_progress
from cli.render import clean
from cli.temporal_client import connect
from coordinator.escalation import Action, Approval, ApprovalAnswer, Escalation, Resolution
from coordinator.report import Progress

R = TypeVar("R", bound=BaseModel)

# How long an answer may take to be taken by the execution (a worker must run it).
UPDATE_TIMEOUT_S = 60.0


def _default_by() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (e.g. a bare container)
        return ""


ByOption = typer.Option(None, "--by", help="Who answers, for the report (default: your user name).")


def cancel_command(
    execution_id: str = ExecutionIdArgument,
    address: str | None = AddressOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Cancel an execution: it stops cleanly and its report says Cancelled."""

    async def cancel() -> ExitCode:
        client = await connect(settings_from(address, namespace))
        handle = await execution_handle(client, execution_id)
        status = (await handle.describe()).status
        if status != WorkflowExecutionStatus.RUNNING:
            name = status.name.lower() if status else "closed"
            fail(
                f"{execution_id} has already ended ({name}); nothing to cancel",
                ExitCode.NOT_COMPLETE,
            )
        await handle.cancel()
        typer.echo(
            f"cancellation requested for {execution_id}; 'coord watch {execution_id}' follows it"
        )
        return ExitCode.COMPLETE

    raise typer.Exit(int(run_async(cancel())))


def resolve_command(
    execution_id: str = ExecutionIdArgument,
    escalation_id: str | None = typer.Argument(
        None, help="The escalation id; may be left out when only one is pending."
    ),
    retry: bool = typer.Option(
        False, "--retry", help="Try the task again (attempts start over), with --guidance."
    ),
    skip: bool = typer.Option(
        False, "--skip", help="Skip the task; its dependants follow the plan's on_skip."
    ),
    abort: bool = typer.Option(
        False, "--abort", help="End the execution Partial, the work so far kept on its branch."
    ),
    guidance: str | None = typer.Option(
        None, "--guidance", help="With --retry: what the specialist should do differently."
    ),
    budget: float | None = typer.Option(
        None,
        "--budget",
        help="With --retry, for a budget escalation: the new limit in USD (the execution's, "
        "or the task's).",
    ),
    by: str | None = ByOption,
    json_output: bool = JsonOption,
    address: str | None = AddressOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Answer an escalation: --retry [--guidance TEXT] [--budget USD], --skip or --abort."""
    action = _chosen_action(retry=retry, skip=skip, abort=abort)
    _check_retry_options(action, guidance, budget)
    resolution = _model(
        Resolution,
        escalation_id=escalation_id,
        action=action,
        guidance=guidance or "",
        budget=budget,
        by=_default_by() if by is None else by,
    )

    async def resolve() -> ExitCode:
        client = await connect(settings_from(address, namespace))
        handle, progress = await _waiting_execution(client, execution_id, "resolve")
        if resolution.escalation_id is None:
            resolution.escalation_id = _only_pending(progress).id
        answered = await _update(handle, "resolve_escalation", resolution, Escalation)
        if json_output:
            typer.echo(answered.model_dump_json(indent=2))
        else:
            _echo_resolved(execution_id, answered, resolution, progress)
        return ExitCode.COMPLETE

    raise typer.Exit(int(run_async(resolve())))


def _chosen_action(*, retry: bool, skip: bool, abort: bool) -> Action:
    """The one action of --retry, --skip and --abort given (else exit 2 saying so)."""
    chosen = [
        action
        for action, on in ((Action.RETRY, retry), (Action.SKIP, skip), (Action.ABORT, abort))
        if on
    ]
    if len(chosen) != 1:
        given = " and ".join(f"--{a.value}" for a in chosen)
        fail(
            "choose exactly one of --retry, --skip, --abort" + (f" (got {given})" if given else ""),
            ExitCode.INVALID,
        )
    return chosen[0]


def _check_retry_options(action: Action, guidance: str | None, budget: float | None) -> None:
    """--guidance and --budget go with --retry only, and must say something (else exit 2)."""
    if guidance is not None and action != Action.RETRY:
        fail(
            f"--guidance goes with --retry only (it is handed to the specialist on the next "
            f"attempt); --{action.value} takes none",
            ExitCode.INVALID,
        )
    if guidance is not None and not guidance.strip():
        fail(
            "--guidance is empty: say what the specialist should do differently, or leave "
            "out --guidance to retry without any",
            ExitCode.INVALID,
        )
    if budget is not None and action != Action.RETRY:
        fail(f"--budget goes with --retry only; --{action.value} takes none", ExitCode.INVALID)
    if budget is not None and budget <= 0:
        fail(f"--budget must be a positive amount of USD, not {budget}", ExitCode.INVALID)


def _echo_resolved(
    execution_id: str, answered: Escalation, resolution: Resolution, progress: Progress
) -> None:
    """What `coord resolve` prints: what was answered, what comes next, what is still waiting."""
    where = f"task {answered.task_id}" if answered.task_id else f"phase {answered.phase}"
    typer.echo(f"resolved escalation {answered.id} ({where}): {resolution.action.value}")
    typer.echo(f"next: {_after_resolution(answered, resolution, progress)}")
    others = [e.id for e in progress.pending_escalations if e.id != answered.id]
    if others:
        typer.echo(f"still pending: {', '.join(others)} ('coord status {execution_id}')")
    typer.echo(f"'coord watch {execution_id}' follows the execution")


def approve_command(
    execution_id: str = ExecutionIdArgument,
    reason: str = typer.Option("", "--reason", help="Why, for the report."),
    by: str | None = ByOption,
    json_output: bool = JsonOption,
    address: str | None = AddressOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Approve the pending approval: the execution goes on."""
    _answer_approval(execution_id, "approve", reason, by, json_output, address, namespace)


def reject_command(
    execution_id: str = ExecutionIdArgument,
    reason: str = typer.Option(..., "--reason", help="Why, for the report (required)."),
    by: str | None = ByOption,
    json_output: bool = JsonOption,
    address: str | None = AddressOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Reject the pending approval: the execution ends Partial, the work kept on its branch."""
    if not reason.strip():
        fail("--reason must say why the execution is rejected", ExitCode.INVALID)
    _answer_approval(execution_id, "reject", reason, by, json_output, address, namespace)


def _answer_approval(
    execution_id: str,
    verb: str,
    reason: str,
    by: str | None,
    json_output: bool,
    address: str | None,
    namespace: str | None,
) -> None:
    answer = _model(ApprovalAnswer, reason=reason, by=_default_by() if by is None else by)

    async def send() -> ExitCode:
        client = await connect(settings_from(address, namespace))
        handle, progress = await _waiting_execution(client, execution_id, verb)
        # The workflow's validator refuses when no approval is pending, and says so.
        approval = await _update(handle, verb, answer, Approval)
        if json_output:
            typer.echo(approval.model_dump_json(indent=2))
            return ExitCode.COMPLETE
        typer.echo(f"{approval.state} {approval.name} for {execution_id}")
        typer.echo(f"next: {_after_approval(approval, progress)}")
        typer.echo(f"'coord watch {execution_id}' follows the execution")
        return ExitCode.COMPLETE

    raise typer.Exit(int(run_async(send())))


def _model(model: type[R], **fields: Any) -> R:
    """The answer's payload; a field the model refuses (e.g. too long) is one line, exit 2."""
    try:
        return model(**fields)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}" for e in err.errors()
        )
        fail(problems, ExitCode.INVALID)


async def _waiting_execution(
    client: Client, execution_id: str, verb: str
) -> tuple[WorkflowHandle[Any, Any], Progress]:
    """The running execution and its progress, or a clear error: no such execution, already
    ended (exit 2: there is nothing to answer), or no worker to take the answer (exit 1)."""
    handle = await execution_handle(client, execution_id)
    status = (await handle.describe()).status
    if status != WorkflowExecutionStatus.RUNNING:
        name = status.name.lower() if status else "closed"
        fail(
            f"{execution_id} has already ended ({name}); there is nothing to {verb}",
            ExitCode.INVALID,
        )
    progress = await query_progress(handle)
    if progress is None:
        fail(
            f"no worker answered for {execution_id}; an answer needs one: "
            "is 'coord worker' running?",
            ExitCode.NOT_COMPLETE,
        )
    return handle, progress


def _only_pending(progress: Progress) -> Escalation:
    """The one pending escalation, when ESC_ID was left out."""
    pending = progress.pending_escalations
    eid = progress.execution_id
    if not pending:
        fail(
            f"{eid} has no pending escalation (status {progress.status.value}); nothing to resolve",
            ExitCode.INVALID,
        )
    if len(pending) > 1:
        listing = "\n".join(
            f"  {e.id}  ({f'task {e.task_id}' if e.task_id else f'phase {e.phase}'}) "
            f"{clean(e.question or e.reason)}"
            for e in pending
        )
        fail(
            f"{eid} has {len(pending)} pending escalations; say which one, "
            f"e.g. 'coord resolve {eid} {pending[0].id} --retry':\n{listing}",
            ExitCode.INVALID,
        )
    return pending[0]


async def _update(
    handle: WorkflowHandle[Any, Any], name: str, payload: BaseModel, result_type: type[R]
) -> R:
    """Send an answer; the workflow's refusal is `error: <its message>` and exit 2."""
    try:
        result = await asyncio.wait_for(
            handle.execute_update(name, payload, result_type=result_type), UPDATE_TIMEOUT_S
        )
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        fail(cause.message if isinstance(cause, FailureError) else str(cause), ExitCode.INVALID)
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        fail(
            f"{handle.id} did not take the answer within {UPDATE_TIMEOUT_S:g} s (is "
            f"'coord worker' running?); 'coord status {handle.id}' shows whether it arrived",
            ExitCode.NOT_COMPLETE,
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            # It ended between our look and the answer.
            fail(f"{handle.id} has ended; there is nothing to answer", ExitCode.INVALID)
        raise
    assert isinstance(result, result_type)
    return result


def _after_resolution(e: Escalation, resolution: Resolution, progress: Progress) -> str:
    subject = f"task {e.task_id}" if e.task_id else f"the {e.phase} round"
    if resolution.action == Action.RETRY:
        return f"{subject} is tried again with a fresh set of attempts" + (
            "; the specialist gets your guidance" if resolution.guidance else ""
        )
    if resolution.action == Action.SKIP:
        return (
            f"{subject} is skipped; tasks that depend on it are skipped or escalate, "
            "as the plan's on_skip says"
        )
    return "the execution ends Partial; the work done so far stays on " + _branch(progress)


def _after_approval(a: Approval, progress: Progress) -> str:
    if a.state == "rejected":
        return "the execution ends Partial; the work done so far stays on " + _branch(progress)
    if a.name == "before_start":
        return "the execution goes on: implementation starts"
    return "the execution goes on: integration and review"


def _branch(progress: Progress) -> str:
    ws = progress.workspace
    return f"branch {ws.branch}" if ws else "the execution branch"
