"""ExecutionWorkflow: one run of a plan, and the one control surface for humans.

It runs the phases as child workflows (setup → approval? → implementation → validation →
approval? → integration → review), keeps the progress the phases report, answers the
`progress` query, and takes the human answers: `resolve_escalation`, `approve`, `reject`
(each an update with a validator, and a signal of the same name and shape).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from pathlib import PurePosixPath
from typing import Any, Literal, TypeVar

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
        ExecutionCarry,
        ExecutionInput,
        PhaseInput,
        SetupResult,
        StatusFileRequest,
    )
    from coordinator.handoff import (
        GithubAccessRequest,
        GithubPhaseInput,
        HandoffState,
        PullRequestRequest,
        PushRequest,
        StatusCommentRequest,
        TaskRef,
        WebhookRequest,
    )
    from coordinator.pull_request import pull_request_body
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
    from coordinator.status_comment import (
        render_status,
        status_signature,
        waiting_signature,
        webhook_payload,
        webhook_text,
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
        TASKS_UPDATE,
        WORKSPACE_READY,
        root_message,
    )
    from workflows.review_phase import ReviewPhaseWorkflow
    from workflows.setup_phase import SetupPhaseWorkflow
    from workflows.validation_phase import ValidationPhaseWorkflow

T = TypeVar("T")

DETAILS_TASK_ROWS = 50  # the Web UI shows a summary table, not a thousand rows
PHASE_TIMEOUT = timedelta(days=30)  # phases wait on humans; this only bounds a forgotten run
# Executions started before the GitHub handoff and notifications existed replay without them.
HANDOFF_PATCH = "github-handoff"


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


# A run this short never hands over (no loop of empty runs when the server suggests it).
MIN_RUN_EVENTS = 20


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
        self._runs = 0
        self._declined_continue_as_new = False
        self._status_writer: asyncio.Task[None] | None = None
        if request.carry is not None:  # a continue-as-new: pick up where the last run was
            self._progress = request.carry.progress
            self._human_todo = list(request.carry.human_todo)
            self._runs = request.carry.runs
        self._visible: tuple[str, str, int] | None = None  # search attributes last upserted
        # The status comment and the webhook: a background task posts when what people
        # should see changed (a phase, a question, the end), one post at a time.
        self._notice_task: asyncio.Task[None] | None = None
        self._notice_wanted: tuple[object, ...] | None = None
        self._notice_dirty = False
        self._notice_closing = False
        self._waiting_notified: tuple[str, ...] = ()
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

    @workflow.signal(name=TASKS_UPDATE)
    def _tasks_update(self, states: list[TaskState]) -> None:
        changed = {s.id: s for s in states}
        self._progress.tasks = [changed.get(t.id, t) for t in self._progress.tasks]
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
        self._status_writer = writer
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
        report = ExecutionReport.from_progress(
            self._progress, human_todo=self._human_todo, finished_at=workflow.now()
        )
        if self._notice_task is not None:
            await self._finish_handoff(report)
        if self._status_writer is not None:  # the final state, exactly, is on disk first
            self._status_version += 1
            self._status_closing = True
            await self._status_writer
        return report

    async def _run_phases(self, request: ExecutionInput) -> None:
        carry = request.carry
        if carry is None:
            setup = await self._run_setup(request)
            await self._start_handoff(request)
            phase_input = PhaseInput(
                execution_id=request.execution_id,
                plan=request.plan,
                workspace=setup.workspace,
                routes=setup.check.routes,
                specialists=setup.check.specialists,
                environment=setup.environment,
                context_paths=setup.context_paths,
            )
        else:
            phase_input = PhaseInput.model_validate({**carry.phase, "plan": request.plan})
            if self._progress.workspace is not None:  # one object again, as before the carry
                phase_input.workspace = self._progress.workspace
            self._resume_handoff(request)
        ws = phase_input.workspace
        plan = request.plan

        if carry is None or carry.stage == "before_start":
            if plan.approval.before_start:
                await self._await_approval(
                    "before_start",
                    f"Start implementing {len(plan.tasks)} tasks on branch {ws.branch}?",
                    phase_input,
                )
            await self._implement_and_validate(phase_input)

        passed = sum(t.status == "passed" for t in self._progress.tasks)
        if plan.approval_before_handoff:
            await self._await_approval(
                "before_handoff",
                f"Hand off branch {ws.branch} ({passed} tasks done)? Review it, then approve.",
                phase_input,
            )

        await self._integrate_and_review(request, phase_input)

    async def _implement_and_validate(self, phase_input: PhaseInput) -> None:
        plan = phase_input.plan
        self._set_phase("implementation", "running", f"{len(plan.tasks)} tasks")
        implementation = await self._child(
            ImplementationPhaseWorkflow.run, phase_input, "implementation"
        )
        if implementation.tasks:  # else the phase's (coalesced) updates brought them all
            self._progress.tasks = implementation.tasks
        elif implementation.updates:  # ... but the last ones, which came with the result
            self._tasks_update(implementation.updates)
        self._record_head(implementation.head)
        tasks = self._progress.tasks
        passed = sum(t.status == "passed" for t in tasks)
        self._set_phase("implementation", "done", f"{passed} of {len(tasks)} tasks passed")
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

    async def _integrate_and_review(self, request: ExecutionInput, phase_input: PhaseInput) -> None:
        ws = phase_input.workspace
        self._set_phase("integration", "running", f"finalising {ws.branch}")
        github = self._github_input(request)
        integration = await self._child(
            IntegrationPhaseWorkflow.run,
            phase_input.model_copy(update={"github": github}) if github else phase_input,
            "integration",
        )
        self._record_head(integration.head)
        summary = (
            f"{ws.branch} at {integration.head[:12]}, {integration.diff.total_files} files changed"
        )
        handoff = self._progress.handoff
        if handoff is not None and integration.github is not None:
            result = integration.github
            if result.push is not None:
                handoff.pushed_head = result.push.head
            handoff.pull_request = result.pull_request
            if result.tick is not None:
                handoff.ticked = result.tick.ticked + result.tick.already_ticked
            if result.pull_request is not None:
                summary += f"; pull request #{result.pull_request.number}"
            if result.skipped_reason:
                handoff.enabled = False
                handoff.skipped_reason = result.skipped_reason
                if not result.aborted:
                    self._human_todo.append(
                        f"Push {ws.branch} and open its pull request yourself: the GitHub "
                        "handoff was skipped (see Handoff)."
                    )
            if result.aborted:
                self._set_phase("integration", "done", summary)
                raise _Stop(ExecutionStatus.PARTIAL, "Aborted at the GitHub handoff.")
        self._set_phase("integration", "done", summary)

        if github is not None and handoff is not None and handoff.pull_request is not None:
            github.pull_request = handoff.pull_request
            github.pushed_head = handoff.pushed_head
            github.body = ""  # the review does not need it
            phase_input = phase_input.model_copy(update={"github": github})
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
        if self._progress.handoff is not None:
            if review.pushed_head:
                self._progress.handoff.pushed_head = review.pushed_head
            self._progress.handoff.review_event = review.review_event
        self._progress.problems += review.problems
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
            if phase == "implementation":
                # This execution handles TASKS_UPDATE: the phase may coalesce its updates.
                arg.coalesce_updates = workflow.patched("coalesced-task-updates")
        return await workflow.execute_child_workflow(
            run,
            arg,
            id=f"{self._request.execution_id}/{phase}",
            static_summary=f"{phase}: {self._request.plan.name}",
            execution_timeout=PHASE_TIMEOUT,
        )

    async def _await_approval(
        self, name: ApprovalName, question: str, phase_input: PhaseInput
    ) -> None:
        """Wait for a human's approval, durably, for as long as it takes: when the history
        grows long in the meantime (signals, updates), hand over to a new run."""
        # After a continue-as-new the question was asked already (and may have been
        # answered while the last run handed over): never ask it twice.
        asked = next((a for a in reversed(self._progress.approvals) if a.name == name), None)
        if asked is not None:
            approval = asked
        else:
            approval = Approval(name=name, question=question, asked_at=workflow.now())
            self._progress.approvals.append(approval)
            self._publish()
        while approval.state == "pending":
            await workflow.wait_condition(
                lambda: (
                    approval.state != "pending"
                    or (
                        workflow.info().is_continue_as_new_suggested()
                        and workflow.info().get_current_history_length() >= MIN_RUN_EVENTS
                        and not self._declined_continue_as_new
                    )
                )
            )
            if approval.state == "pending":
                if workflow.patched("execution-continue-as-new"):
                    # Returns only if the approval was answered while it handed over.
                    await self._continue_as_new(name, phase_input, approval)
                else:
                    self._declined_continue_as_new = True  # code from before: wait on
        self._publish()
        if approval.state == "rejected":
            reason = approval.answer.reason if approval.answer else ""
            raise _Stop(
                ExecutionStatus.PARTIAL,
                f"Rejected at {name}" + (f": {reason}" if reason else "") + "; work so far is on "
                "the branch.",
            )

    async def _continue_as_new(
        self,
        stage: Literal["before_start", "before_handoff"],
        phase_input: PhaseInput,
        approval: Approval,
    ) -> None:
        notices = self._notice_task is not None
        await self._pause_handoff()
        if self._status_writer is not None:  # the file shows this moment before the handover
            self._status_version += 1
            self._status_closing = True
            await self._status_writer
        if approval.state != "pending":
            # Answered while the comment and the file were brought up to date: carry on here.
            if notices:
                self._notice_closing = False
                self._notice_task = asyncio.create_task(self._notice_loop())
            if self._status_path:
                self._status_closing = False
                self._status_writer = asyncio.create_task(self._keep_status_file())
            self._publish()  # what changed meanwhile (the answer) is noticed again
            return
        carry = ExecutionCarry(
            progress=self._progress,
            human_todo=self._human_todo,
            # The plan is in the request already: carried once, not twice.
            phase=phase_input.model_dump(mode="json", exclude={"plan", "carry"}),
            stage=stage,
            runs=self._runs + 1,
        )
        workflow.continue_as_new(self._request.model_copy(update={"carry": carry}))

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
                    StatusFileRequest(
                        path=path, root=ws.path, progress=self._progress.model_copy(deep=True)
                    )
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
        if self._notice_task is not None and not self._notice_closing:
            wanted = status_signature(p)
            if wanted != self._notice_wanted:
                self._notice_wanted = wanted
                self._notice_dirty = True

    # --- the GitHub handoff and notifications ----------------------------------------------

    async def _start_handoff(self, request: ExecutionInput) -> None:
        """With a GitHub handoff or a webhook configured: ask whether this worker can reach
        GitHub (a token is present; its value stays on the worker), then keep the status
        comment and the webhook informed until the end."""
        plan = request.plan
        gh = plan.handoff.github
        if gh is None and not plan.notifies:
            return
        if not workflow.patched(HANDOFF_PATCH):
            return
        if gh is not None:
            access = await steps.github_access(GithubAccessRequest(repo=gh.repo))
            ws = self._progress.workspace
            self._progress.handoff = HandoffState(
                repo=gh.repo,
                issue=gh.issue,
                enabled=access.enabled,
                skipped_reason=access.reason,
                branch=ws.branch if ws else None,
            )
        self._notice_task = asyncio.create_task(self._notice_loop())
        self._publish()

    def _resume_handoff(self, request: ExecutionInput) -> None:
        """After a continue-as-new: keep the status comment and webhook informed, from what
        the last run had already told them (nothing is posted twice)."""
        if self._progress.handoff is None and not request.plan.notifies:
            return
        self._notice_wanted = status_signature(self._progress)
        self._waiting_notified = waiting_signature(self._progress)
        self._notice_task = asyncio.create_task(self._notice_loop())

    async def _pause_handoff(self) -> None:
        """Before a continue-as-new: what changed is posted, then the loop stops."""
        if self._notice_task is None:
            return
        self._notice_closing = True
        await self._notice_task
        if self._notice_dirty:
            self._notice_dirty = False
            await self._post_notice(None)

    def _github_input(self, request: ExecutionInput) -> GithubPhaseInput | None:
        gh = request.plan.handoff.github
        handoff = self._progress.handoff
        if gh is None or handoff is None or not handoff.enabled:
            return None
        interim = ExecutionReport.from_progress(
            self._progress, human_todo=self._human_todo, finished_at=None
        )
        return GithubPhaseInput(
            repo=gh.repo,
            issue=gh.issue,
            draft=gh.draft,
            force_push=gh.force_push,
            title=gh.title or f"coord: {request.plan.name}",
            body=pull_request_body(interim, request.ui_url),
            finished=[
                TaskRef(id=t.id, title=t.title, checkbox=gh.checkboxes.get(t.id))
                for t in self._progress.tasks
                if t.status == "passed"
            ],
        )

    async def _notice_loop(self) -> None:
        while True:
            await workflow.wait_condition(lambda: self._notice_dirty or self._notice_closing)
            if self._notice_closing:
                return  # the final post follows
            self._notice_dirty = False
            await self._post_notice(None)

    async def _post_notice(self, report: ExecutionReport | None) -> None:
        """Update the status comment and, when a new question waits or at the end, the
        webhook. Failures are reported, never raised: people miss a note, the work goes on."""
        p = self._progress
        ui_url = self._request.ui_url
        waiting = waiting_signature(p)
        if self._request.plan.notifies and (
            report is not None or (waiting and waiting != self._waiting_notified)
        ):
            self._waiting_notified = waiting
            notify = self._request.plan.notify
            text = webhook_text(p, ui_url=ui_url, report=report)
            payload = webhook_payload(
                p,
                event="finished" if report is not None else "waiting",
                text=text,
                ui_url=ui_url,
                report=report,
            )
            await self._quietly(
                "webhook not delivered",
                steps.notify_webhook(
                    WebhookRequest(
                        execution_id=p.execution_id,
                        url=notify.webhook,
                        url_env=notify.webhook_env,
                        payload=payload,
                    )
                ),
                report=report,
                add_problem=False,
            )
        handoff = p.handoff
        if handoff is None or not handoff.enabled:
            return
        number = handoff.issue or (handoff.pull_request.number if handoff.pull_request else None)
        if number is None:
            return  # no issue: the comment goes on the pull request once there is one
        comment = await self._quietly(
            "status comment not updated",
            steps.github_status_comment(
                StatusCommentRequest(
                    repo=handoff.repo,
                    number=number,
                    execution_id=p.execution_id,
                    body=render_status(p, ui_url=ui_url, report=report),
                )
            ),
            report=report,
        )
        if comment is not None:
            handoff.status_comment_url = comment.url

    async def _quietly(
        self,
        what: str,
        call: Awaitable[T],
        *,
        report: ExecutionReport | None,
        add_problem: bool = True,
    ) -> T | None:
        try:
            return await call
        except ActivityError as err:
            message = f"{what}: {root_message(err)}"
            workflow.logger.warning(message)
            if add_problem and message not in self._progress.problems:
                self._progress.problems.append(message)
            if add_problem and report is not None and message not in report.problems:
                report.problems.append(message)
            return None

    async def _finish_handoff(self, report: ExecutionReport) -> None:
        """The end: push what the last phases added, the final report as the pull request's
        body, the final status comment and webhook."""
        self._notice_closing = True
        if self._notice_task is not None:
            await self._notice_task
        handoff = self._progress.handoff
        ws = self._progress.workspace
        gh = self._request.plan.handoff.github
        if handoff is not None and handoff.enabled and handoff.pull_request and ws and gh:
            if handoff.pushed_head and ws.head_commit != handoff.pushed_head:
                pushed = await self._quietly(
                    "final push failed",
                    steps.github_push(
                        ws,
                        PushRequest(
                            execution_id=report.execution_id,
                            repo=gh.repo,
                            workspace=ws.path,
                            branch=ws.branch,
                            force=gh.force_push,
                        ),
                    ),
                    report=report,
                )
                if pushed is not None:
                    handoff.pushed_head = pushed.head
            await self._quietly(
                "pull request body not updated",
                steps.github_pull_request(
                    PullRequestRequest(
                        execution_id=report.execution_id,
                        repo=gh.repo,
                        branch=ws.branch,
                        base=ws.base_branch,
                        title=gh.title or f"coord: {self._request.plan.name}",
                        body=pull_request_body(report, self._request.ui_url),
                        draft=gh.draft,
                    )
                ),
                report=report,
            )
        await self._post_notice(report)
        report.handoff = handoff


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
