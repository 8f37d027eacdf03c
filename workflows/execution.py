"""ExecutionWorkflow: one run of a plan, and the one control surface for humans.

It runs the phases as child workflows (setup → approval? → implementation → validation →
approval? → integration → review), keeps the progress the phases report, answers the
`progress` query, and takes the human answers: `resolve_escalation`, `approve`, `reject`
(each an update with a validator, and a signal of the same name and shape).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import PurePosixPath
from typing import Any

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from coordinator.branches import PendingWorkRequest
    from coordinator.dag import resolve_dependencies
    from coordinator.environment import status_file_path
    from coordinator.escalation import (
        Action,
        Approval,
        ApprovalAnswer,
        ApprovalName,
        Escalation,
        Resolution,
    )
    from coordinator.execution import (
        ExecutionInput,
        PhaseInput,
        SetupResult,
        StatusFileRequest,
    )
    from coordinator.report import (
        PHASES,
        ExecutionReport,
        ExecutionStatus,
        GateSummary,
        PhaseName,
        PhaseState,
        PhaseStatus,
        Progress,
        Spend,
        TaskState,
        Workspace,
    )
    from workflows import search_attributes as sa
    from workflows import steps
    from workflows.implementation_phase import ImplementationPhaseWorkflow
    from workflows.integration_phase import IntegrationPhaseWorkflow
    from workflows.phase import (
        ESCALATION_ANSWERED,
        ESCALATION_CLOSED,
        ESCALATION_RAISED,
        GATE_UPDATE,
        SPEND,
        TASK_UPDATE,
        WORKSPACE_READY,
        root_message,
    )
    from workflows.review_phase import ReviewPhaseWorkflow
    from workflows.setup_phase import SetupPhaseWorkflow
    from workflows.validation_phase import ValidationPhaseWorkflow

DETAILS_TASK_ROWS = 50  # the Web UI shows a summary table, not a thousand rows
PHASE_TIMEOUT = timedelta(days=30)  # phases wait on humans; this only bounds a forgotten run


def _check_budget_answer(escalation: Escalation, answer: Resolution) -> None:
    """A budget escalation needs a higher budget to retry; other escalations take none."""
    if escalation.budget_usd is None:
        if answer.budget is not None:
            raise ApplicationError(
                f"escalation {escalation.id} is not about a budget: leave out --budget",
                non_retryable=True,
            )
        return
    if answer.action == Action.RETRY:
        spent = escalation.spent_usd or 0.0
        if answer.budget is None or answer.budget <= spent:
            raise ApplicationError(
                f"escalation {escalation.id}: {escalation.reason}; retrying needs a budget "
                f"above ${spent:.2f} (--budget USD), or answer --abort",
                non_retryable=True,
            )
    elif answer.action == Action.SKIP and escalation.task_id is None:
        raise ApplicationError(
            f"escalation {escalation.id}: the execution's budget cannot be skipped: retry "
            "with --budget USD, or --abort",
            non_retryable=True,
        )


class _Stop(Exception):
    """Ends the run early with a status: an abort, a rejection, a failed setup."""

    def __init__(self, status: ExecutionStatus, todo: str) -> None:
        super().__init__(todo)
        self.status = status
        self.todo = todo


@workflow.defn(name="ExecutionWorkflow")
class ExecutionWorkflow:
    @workflow.init
    def __init__(self, request: ExecutionInput) -> None:
        self._request = request
        deps = resolve_dependencies(request.plan.tasks)
        self._progress = Progress(
            execution_id=request.execution_id,
            plan_name=request.plan.name,
            phases=[PhaseState(name=name) for name in PHASES],
            tasks=[
                TaskState(
                    id=t.id,
                    title=t.title,
                    layer=t.layer,
                    depends_on=list(deps[t.id]),
                    specialist=t.specialist,
                )
                for t in request.plan.tasks
            ],
            started_at=workflow.now(),
            budget_usd=request.plan.budget,
        )
        self._human_todo: list[str] = []
        self._visible: tuple[str, str, int] | None = None  # search attributes last upserted
        # The status file (plans with `status_file`): a version bumped when something it
        # shows changed, and the version last written.
        self._status_path = status_file_path(request.plan.status_file, request.execution_id)
        self._status_seen: tuple[Any, ...] | None = None
        self._status_version = 0
        self._status_written = 0
        self._status_closing = False
        self._status_failed = False

    # --- queries -------------------------------------------------------------------------

    @workflow.query
    def progress(self) -> Progress:
        return self._progress

    # --- what the phases tell us ---------------------------------------------------------

    @workflow.signal(name=TASK_UPDATE)
    def _task_update(self, state: TaskState) -> None:
        self._progress.tasks = [state if t.id == state.id else t for t in self._progress.tasks]
        self._publish()

    @workflow.signal(name=GATE_UPDATE)
    def _gate_update(self, gate: GateSummary) -> None:
        self._progress.record_gate(gate)
        self._publish()

    @workflow.signal(name=WORKSPACE_READY)
    def _workspace_ready(self, workspace: Workspace) -> None:
        if self._progress.workspace is None:
            self._progress.workspace = workspace
            self._publish()

    @workflow.signal(name=SPEND)
    def _spend(self, spend: Spend) -> None:
        self._progress.spend.append(spend)
        self._publish()

    @workflow.signal(name=steps.WORKSPACE_MOVED)
    def _workspace_moved(self, moved: Workspace) -> None:
        """A phase re-homed the workspace: later phases start on the new host."""
        ws = self._progress.workspace  # the object the phases' input holds
        if ws is not None and moved.moves > ws.moves:
            ws.path, ws.host_queue, ws.moves = moved.path, moved.host_queue, moved.moves
            ws.former_dirs = moved.former_dirs
            self._publish()

    @workflow.signal(name=ESCALATION_RAISED)
    def _escalation_raised(self, escalation: Escalation) -> None:
        escalation.completed = [t.id for t in self._progress.tasks if t.status == "passed"]
        escalation.remaining = [
            t.id for t in self._progress.tasks if t.status not in ("passed", "skipped")
        ]
        self._progress.escalations.append(escalation)
        self._publish()

    @workflow.signal(name=ESCALATION_CLOSED)
    def _escalation_closed(self, escalation: Escalation) -> None:
        """The plan's escalation_timeout answered it: nobody did."""
        if any(e.id == escalation.id and e.state != "pending" for e in self._progress.escalations):
            return  # a human's answer got there first and stands
        self._progress.escalations = [
            escalation if e.id == escalation.id else e for e in self._progress.escalations
        ]
        if escalation.answer is not None:
            self._human_todo.append(
                f"Nobody answered escalation {escalation.id} in time: the plan's "
                f"on_escalation_timeout applied ({escalation.answer.action.value}; "
                f"{escalation.reason})."
            )
        self._publish()

    # --- human answers -------------------------------------------------------------------

    @workflow.update(name="resolve_escalation")
    async def resolve_escalation(self, answer: Resolution) -> Escalation:
        return await self._resolve(answer)

    async def _resolve(self, answer: Resolution) -> Escalation:
        escalation = self._pending_escalation(answer)
        if escalation.budget_usd is not None and escalation.task_id is None and answer.budget:
            self._progress.budget_usd = answer.budget  # later phases start from it
        escalation.state = "answered"
        escalation.answer = answer.model_copy(update={"escalation_id": escalation.id})
        escalation.answered_at = workflow.now()
        self._publish()
        await workflow.get_external_workflow_handle(escalation.waiting_workflow_id).signal(
            ESCALATION_ANSWERED, escalation.answer
        )
        return escalation

    @resolve_escalation.validator
    def _validate_resolution(self, answer: Resolution) -> None:
        escalation = self._pending_escalation(answer)
        _check_budget_answer(escalation, answer)

    @workflow.signal(name="resolve_escalation")
    async def resolve_escalation_signal(self, answer: Resolution) -> None:
        """For `temporal workflow signal` users; an invalid answer is logged and ignored."""
        try:
            _check_budget_answer(self._pending_escalation(answer), answer)
        except ApplicationError as err:
            workflow.logger.warning("ignored resolve_escalation signal: %s", err)
            return
        await self._resolve(answer)

    def _pending_escalation(self, answer: Resolution) -> Escalation:
        pending = self._progress.pending_escalations
        if answer.escalation_id is None:
            if len(pending) == 1:
                return pending[0]
            ids = ", ".join(e.id for e in pending) or "none"
            raise ApplicationError(
                f"name the escalation to answer: {len(pending)} are pending ({ids})",
                non_retryable=True,
            )
        for escalation in self._progress.escalations:
            if escalation.id == answer.escalation_id:
                if escalation.state != "pending":
                    raise ApplicationError(
                        f"escalation {escalation.id} was already {escalation.state}",
                        non_retryable=True,
                    )
                return escalation
        ids = ", ".join(e.id for e in pending) or "none"
        raise ApplicationError(
            f"no escalation '{answer.escalation_id}' (pending: {ids})", non_retryable=True
        )

    @workflow.update(name="approve")
    def approve(self, answer: ApprovalAnswer) -> Approval:
        return self._answer_approval("approved", answer)

    @approve.validator
    def _validate_approve(self, answer: ApprovalAnswer) -> None:
        self._pending_approval()

    @workflow.update(name="reject")
    def reject(self, answer: ApprovalAnswer) -> Approval:
        return self._answer_approval("rejected", answer)

    @reject.validator
    def _validate_reject(self, answer: ApprovalAnswer) -> None:
        self._pending_approval()

    @workflow.signal(name="approve")
    def approve_signal(self, answer: ApprovalAnswer) -> None:
        if self._progress.pending_approval is not None:
            self._answer_approval("approved", answer)

    @workflow.signal(name="reject")
    def reject_signal(self, answer: ApprovalAnswer) -> None:
        if self._progress.pending_approval is not None:
            self._answer_approval("rejected", answer)

    def _pending_approval(self) -> Approval:
        approval = self._progress.pending_approval
        if approval is None:
            raise ApplicationError("no approval is pending", non_retryable=True)
        return approval

    def _answer_approval(self, state: str, answer: ApprovalAnswer) -> Approval:
        approval = self._pending_approval()
        approval.state = "approved" if state == "approved" else "rejected"
        approval.answer = answer
        approval.answered_at = workflow.now()
        self._publish()
        return approval

    # --- the run -------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: ExecutionInput) -> ExecutionReport:
        workflow.upsert_search_attributes([sa.PLAN.value_set(request.plan.name)])
        writer = asyncio.create_task(self._keep_status_file()) if self._status_path else None
        status = ExecutionStatus.COMPLETED
        try:
            await self._run_phases(request)
        except _Stop as stop:
            status = stop.status
            self._human_todo.append(stop.todo)
        except (asyncio.CancelledError, ActivityError, ChildWorkflowError) as err:
            # A cancel reaches us directly, or wrapped by the phase it interrupted.
            if not is_cancelled_exception(err):
                status = ExecutionStatus.FAILED
                self._progress.problems.append(root_message(err))
                self._human_todo.append("Fix the problem listed above and run the plan again.")
            else:
                status = ExecutionStatus.CANCELLED
                self._human_todo.append(
                    "The execution was cancelled: finished tasks are on the branch; run the "
                    "plan again for the rest."
                )
                await self._clean_up_after_cancel()
        failing = [
            f"{g.level} gate {g.name} ({g.scope})" for g in self._progress.gates if not g.passed
        ]
        if failing and status == ExecutionStatus.COMPLETED:
            self._human_todo.append(f"Still failing, skipped by a human: {', '.join(failing)}.")
        if status == ExecutionStatus.COMPLETED and self._incomplete():
            status = ExecutionStatus.PARTIAL
        for escalation in self._progress.pending_escalations:
            escalation.state = "withdrawn"  # nobody needs to answer a finished execution
        self._progress.status = status
        self._publish()
        if writer is not None:  # the final state, exactly, is on disk before the run ends
            self._status_version += 1
            self._status_closing = True
            await writer
        return ExecutionReport.from_progress(
            self._progress, human_todo=self._human_todo, finished_at=workflow.now()
        )

    async def _run_phases(self, request: ExecutionInput) -> None:
        setup = await self._run_setup(request)
        ws = setup.workspace
        phase_input = PhaseInput(
            execution_id=request.execution_id,
            plan=request.plan,
            workspace=ws,
            routes=setup.check.routes,
            specialists=setup.check.specialists,
            environment=setup.environment,
            context_paths=setup.context_paths,
        )
        plan = request.plan

        if plan.approval.before_start:
            await self._await_approval(
                "before_start",
                f"Start implementing {len(plan.tasks)} tasks on branch {ws.branch}?",
            )

        self._set_phase("implementation", "running", f"{len(plan.tasks)} tasks")
        implementation = await self._child(
            ImplementationPhaseWorkflow.run, phase_input, "implementation"
        )
        self._progress.tasks = implementation.tasks
        self._record_head(implementation.head)
        passed = sum(t.status == "passed" for t in implementation.tasks)
        self._set_phase(
            "implementation", "done", f"{passed} of {len(implementation.tasks)} tasks passed"
        )
        if implementation.aborted:
            raise _Stop(ExecutionStatus.PARTIAL, "Aborted: finished tasks are on the branch.")

        if plan.gates:
            self._set_phase("validation", "running", f"{len(plan.gates)} system gates")
            validation = await self._child(ValidationPhaseWorkflow.run, phase_input, "validation")
            self._record_head(validation.head)
            verdict = "passed" if validation.passed else "failing (skipped by a human)"
            self._set_phase("validation", "done", f"system gates {verdict}")
            if validation.aborted:
                raise _Stop(ExecutionStatus.PARTIAL, "Aborted in validation: gates still fail.")
        else:
            self._set_phase("validation", "skipped", "the plan has no system gates")

        if plan.approval_before_handoff:
            await self._await_approval(
                "before_handoff",
                f"Hand off branch {ws.branch} ({passed} tasks done)? Review it, then approve.",
            )

        self._set_phase("integration", "running", f"finalising {ws.branch}")
        integration = await self._child(IntegrationPhaseWorkflow.run, phase_input, "integration")
        self._record_head(integration.head)
        self._set_phase(
            "integration",
            "done",
            f"{ws.branch} at {integration.head[:12]}, {integration.diff.total_files} files changed",
        )

        await self._run_review(phase_input)

    async def _run_review(self, phase_input: PhaseInput) -> None:
        plan = phase_input.plan
        reviewer = phase_input.specialists.get(plan.reviewer) if plan.reviewer else None
        if plan.reviewer is None:
            self._set_phase("review", "skipped", "the plan has no reviewer")
            return
        # Executions started before the Claude backend existed still skip a Claude reviewer.
        if reviewer is None or (
            reviewer.backend != "command" and not workflow.patched("claude-backend")
        ):
            why = f"reviewer '{plan.reviewer}' needs the Claude backend, not in this version"
            self._set_phase("review", "skipped", why)
            self._human_todo.append(
                f"Review the branch yourself: {why}. Set `reviewer:` to a command specialist, "
                "or `reviewer: null` to skip the review."
            )
            return
        self._set_phase("review", "running", f"reviewer {reviewer.name}")
        review = await self._child(ReviewPhaseWorkflow.run, phase_input, "review")
        self._record_head(review.head)
        self._progress.review = f"{review.verdict} after {review.rounds} round(s)" + (
            f":\n\n```\n{review.findings[-2000:]}\n```" if review.findings else ""
        )
        self._set_phase("review", "done", f"{review.verdict} ({review.rounds} rounds)")
        if review.aborted:
            raise _Stop(ExecutionStatus.PARTIAL, "Aborted in review: the findings stand.")
        if review.verdict != "approve":
            self._human_todo.append("The reviewer's findings were not all addressed: see Review.")

    async def _run_setup(self, request: ExecutionInput) -> SetupResult:
        self._set_phase("setup", "running", "preparing the workspace, checking the plan")
        try:
            setup: SetupResult = await self._child(SetupPhaseWorkflow.run, request, "setup")
        except BaseException:
            self._set_phase("setup", "failed", "setup did not finish")
            raise
        self._progress.problems += setup.check.errors
        self._progress.workspace = setup.workspace
        for task in self._progress.tasks:
            task.specialist = setup.check.routes.get(task.id, task.specialist)
        if not setup.ok:
            self._set_phase("setup", "failed", f"{len(setup.check.errors)} plan problem(s)")
            raise _Stop(
                ExecutionStatus.FAILED, "Fix the problems listed above and run the plan again."
            )
        ws = setup.workspace
        if setup.aborted:
            self._set_phase("setup", "failed", "aborted: a setup command kept failing")
            raise _Stop(
                ExecutionStatus.PARTIAL,
                "Aborted in setup: a setup command kept failing (see Escalations); nothing "
                "was implemented.",
            )
        for name in setup.skipped_setup:
            self._human_todo.append(
                f"Setup command '{name}' was skipped by a human: gates and specialists ran "
                "without it."
            )
        summary = f"branch {ws.branch} from {ws.base_branch}"
        if request.plan.setup:
            ran = len(request.plan.setup) - len(setup.skipped_setup)
            summary += f", {ran} of {len(request.plan.setup)} setup commands"
        self._set_phase("setup", "done", summary)
        return setup

    async def _child(self, run: Any, arg: Any, phase: PhaseName) -> Any:
        if isinstance(arg, PhaseInput):  # each phase starts from the budget as it stands
            arg.budget_usd = self._progress.budget_usd
            arg.spent_usd = self._progress.cost_usd or 0.0
        return await workflow.execute_child_workflow(
            run,
            arg,
            id=f"{self._request.execution_id}/{phase}",
            static_summary=f"{phase}: {self._request.plan.name}",
            execution_timeout=PHASE_TIMEOUT,
        )

    async def _await_approval(self, name: ApprovalName, question: str) -> None:
        approval = Approval(name=name, question=question, asked_at=workflow.now())
        self._progress.approvals.append(approval)
        self._publish()
        await workflow.wait_condition(lambda: approval.state != "pending")
        self._publish()
        if approval.state == "rejected":
            reason = approval.answer.reason if approval.answer else ""
            raise _Stop(
                ExecutionStatus.PARTIAL,
                f"Rejected at {name}" + (f": {reason}" if reason else "") + "; work so far is on "
                "the branch.",
            )

    async def _clean_up_after_cancel(self) -> None:
        """No worktree or process is left behind; finished tasks stay merged."""
        ws = self._progress.workspace
        if ws is None:
            return
        result = await steps.clean_up(
            ws,
            PendingWorkRequest(
                workspace=ws.path,
                execution_id=self._request.execution_id,
                execution_branch=ws.branch,
            ),
        )
        self._record_head(result.head)
        for task in self._progress.tasks:
            if task.status in ("running", "fixing", "escalated", "ready"):
                task.status = "pending"

    def _incomplete(self) -> bool:
        return any(t.status != "passed" for t in self._progress.tasks) or bool(self._human_todo)

    def _record_head(self, head: str) -> None:
        if self._progress.workspace is not None:
            self._progress.workspace.head_commit = head

    def _set_phase(self, name: PhaseName, status: PhaseStatus, summary: str) -> None:
        now = workflow.now()
        for phase in self._progress.phases:
            if phase.name == name:
                if status == "running":
                    phase.started_at = now
                    self._progress.phase = name
                elif status in ("done", "failed", "skipped"):
                    phase.finished_at = now
                phase.status = status
                phase.summary = summary
        self._publish()

    async def _keep_status_file(self) -> None:
        """Write the status file whenever what it shows changed, one write at a time: changes
        made while a write runs are coalesced into the next one."""
        while True:
            await workflow.wait_condition(
                lambda: (
                    self._status_closing
                    or (
                        self._progress.workspace is not None
                        and self._status_version != self._status_written
                    )
                )
            )
            ws = self._progress.workspace
            if ws is None or self._status_version == self._status_written:
                return  # closing, and all is written (or there is nowhere to write: no clone)
            version = self._status_version
            assert self._status_path is not None
            path = str(PurePosixPath(ws.path) / self._status_path)  # absolute stays absolute
            try:
                await steps.write_status(
                    StatusFileRequest(path=path, progress=self._progress.model_copy(deep=True))
                )
            except ActivityError as err:
                # The status file is for tools watching; the execution goes on without it.
                if not self._status_failed:
                    self._status_failed = True
                    self._progress.problems.append(
                        f"status file {path} could not be written: {root_message(err)}"
                    )
            self._status_written = version

    def _status_changed(self) -> None:
        """Phases, task transitions, escalations and approvals go to the status file; gate
        verdicts and timestamps alone do not (they ride along with the next write)."""
        p = self._progress
        seen = (
            p.status,
            p.phase,
            tuple((ph.status, ph.summary) for ph in p.phases),
            tuple((t.status, t.attempts) for t in p.tasks),
            tuple(e.state for e in p.escalations),
            tuple(a.state for a in p.approvals),
            p.workspace.head_commit if p.workspace else None,
            len(p.problems),
            p.review,
        )
        if seen != self._status_seen:
            self._status_seen = seen
            self._status_version += 1

    def _publish(self) -> None:
        """Keep the status and what the Web UI shows (search attributes, details) in step."""
        p = self._progress
        if not p.status.finished:
            if p.pending_approval is not None:
                p.status = ExecutionStatus.AWAITING_APPROVAL
            elif p.pending_escalations:
                p.status = ExecutionStatus.ESCALATED
            else:
                p.status = ExecutionStatus.RUNNING
        p.updated_at = workflow.now()
        # Each upsert is a history event: only when something the Web UI filters on changed.
        visible = (p.status.value, p.phase, p.percent)
        if visible != self._visible:
            self._visible = visible
            workflow.upsert_search_attributes(
                [
                    sa.STATUS.value_set(p.status.value),
                    sa.PHASE.value_set(p.phase),
                    sa.PROGRESS.value_set(p.percent),
                ]
            )
        workflow.set_current_details(_details_markdown(p))
        if self._status_path is not None:
            self._status_changed()


def _details_markdown(p: Progress) -> str:
    lines = [
        f"**{p.plan_name}**: {p.status.value}, phase {p.phase}, {p.percent}% of tasks done",
        "",
    ]
    if p.tokens or p.budget_usd is not None:
        cost = f"${p.cost_usd:.2f}" if p.cost_usd is not None else "unpriced"
        budget = f" of a ${p.budget_usd:.2f} budget" if p.budget_usd is not None else ""
        lines += [f"**Spent**: {p.tokens} tokens, {cost}{budget}", ""]
    for e in p.pending_escalations:
        lines += [f"**Waiting on a human**: `{e.id}`: {e.question}", ""]
    if p.pending_approval is not None:
        lines += [f"**Waiting for approval**: {p.pending_approval.question}", ""]
    lines += ["| phase | status | summary |", "|---|---|---|"]
    lines += [f"| {ph.name} | {ph.status} | {ph.summary} |" for ph in p.phases]
    lines += [
        "",
        "| task | specialist | status | attempts | tokens | cost |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {t.id} | {t.specialist or '-'} | {t.status} | {t.attempts} | {t.tokens or '-'} "
        f"| {f'${t.cost_usd:.2f}' if t.cost_usd is not None else '-'} |"
        for t in p.tasks[:DETAILS_TASK_ROWS]
    ]
    if len(p.tasks) > DETAILS_TASK_ROWS:
        lines.append(f"| … {len(p.tasks) - DETAILS_TASK_ROWS} more | | | | | |")
    return "\n".join(lines)
