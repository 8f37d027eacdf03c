"""ExecutionWorkflow: one run of a plan, and the one control surface for humans.

The conductor. It runs the phases as child workflows (setup → approval? → implementation →
validation → approval? → integration → review), keeps the progress the phases report
(`progress` query), and takes the human answers: `resolve_escalation`, `approve`, `reject`
(each an update with a validator, and a signal of the same name and shape).

The rest is kept by small helpers that own their state. What the phases report: the tasks
(`TaskBoard`, a read model of the implementation phase's task state), gates, spend and the
workspace (`PhaseReports`), escalations (`Escalations`); the approvals (`Approvals`); what a
phase's result means (`phase_outcomes`). What the execution shows, each told when the
progress changed (`_publish`): the Web UI (`WebUi`), the status file (`StatusFile`), the
status comment and webhook (`Notices`), the GitHub handoff (`GithubHandoff`).
See docs/architecture.md.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Literal, TypeVar

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    is_cancelled_exception,
)
from temporalio.types import MethodAsyncSingleParam

with workflow.unsafe.imports_passed_through():
    from coordinator.branches import PendingWorkRequest
    from coordinator.escalation import (
        Approval,
        ApprovalAnswer,
        ApprovalName,
        Escalation,
        Resolution,
    )
    from coordinator.execution import ExecutionCarry, ExecutionInput, PhaseInput, SetupResult
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
    from workflows import phase_outcomes as outcomes
    from workflows import search_attributes as sa
    from workflows import steps
    from workflows.approvals import Approvals, rejection_note
    from workflows.comment_answers import CommentAnswers
    from workflows.escalations import Escalations, timed_out_note
    from workflows.github_handoff import GithubHandoff
    from workflows.implementation_phase import ImplementationPhaseWorkflow
    from workflows.integration_phase import IntegrationPhaseWorkflow
    from workflows.notices import Notices
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
    from workflows.phase_outcomes import PhaseOutcome, StopExecution
    from workflows.phase_reports import PhaseReports
    from workflows.review_phase import ReviewPhaseWorkflow
    from workflows.setup_phase import SetupPhaseWorkflow
    from workflows.status_file import StatusFile
    from workflows.task_board import TaskBoard, plan_task_states
    from workflows.validation_phase import ValidationPhaseWorkflow
    from workflows.web_ui import WebUi

PhaseT = TypeVar("PhaseT")
InputT = TypeVar("InputT")
ResultT = TypeVar("ResultT")

PHASE_TIMEOUT = timedelta(days=30)  # phases wait on humans; this only bounds a forgotten run
# Executions started before the GitHub handoff and notifications existed replay without them.
HANDOFF_PATCH = "github-handoff"
# Executions started before it end (or hand over) without waiting for handlers in flight.
HANDLERS_PATCH = "handlers-finished-first"


@workflow.defn(name="ExecutionWorkflow")
class ExecutionWorkflow:
    @workflow.init
    def __init__(self, request: ExecutionInput) -> None:
        self._request = request
        self._progress = Progress(
            execution_id=request.execution_id,
            plan_name=request.plan.name,
            phases=[PhaseState(name=name) for name in PHASES],
            tasks=plan_task_states(request.plan.tasks, routes={}),
            started_at=workflow.now(),
            budget_usd=request.plan.budget,
        )
        self._human_todo: list[str] = []
        self._runs = 0
        if request.carry is not None:  # a continue-as-new: pick up where the last run was
            self._progress = request.carry.progress
            self._human_todo = list(request.carry.human_todo)
            self._runs = request.carry.runs
        progress = self._progress
        self._tasks = TaskBoard(progress)
        self._reports = PhaseReports(progress)
        self._escalations = Escalations(progress, self._tasks)
        self._approvals = Approvals(progress)
        self._web_ui = WebUi(progress)
        self._status_file = StatusFile(progress, request.plan.status_file, request.execution_id)
        self._notices = Notices(progress, request)
        self._handoff = GithubHandoff(progress, request)
        # `/coord ...` comments on the issue or pull request: answers by the same path.
        self._answers = CommentAnswers(
            progress, request, self._resolve, self._escalations.check, self._answer_approval
        )

    # --- queries -------------------------------------------------------------------------

    @workflow.query
    def progress(self) -> Progress:
        return self._progress

    # --- what the phases tell us ---------------------------------------------------------

    @workflow.signal(name=TASK_UPDATE)
    def _task_update(self, state: TaskState) -> None:
        self._tasks.apply([state])
        self._publish()

    @workflow.signal(name=TASKS_UPDATE)
    def _tasks_update(self, states: list[TaskState]) -> None:
        self._tasks.apply(states)
        self._publish()

    @workflow.signal(name=GATE_UPDATE)
    def _gate_update(self, gate: GateSummary) -> None:
        self._reports.gate(gate)
        self._publish()

    @workflow.signal(name=WORKSPACE_READY)
    def _workspace_ready(self, workspace: Workspace) -> None:
        if self._reports.workspace_ready(workspace):
            self._publish()

    @workflow.signal(name=SPEND)
    def _spend(self, spend: Spend) -> None:
        self._reports.spend(spend)
        self._publish()

    @workflow.signal(name=steps.WORKSPACE_MOVED)
    def _workspace_moved(self, moved: Workspace) -> None:
        if self._reports.workspace_moved(moved):
            self._publish()

    @workflow.signal(name=ESCALATION_RAISED)
    def _escalation_raised(self, escalation: Escalation) -> None:
        self._escalations.raised(escalation)
        self._publish()

    @workflow.signal(name=ESCALATION_CLOSED)
    def _escalation_closed(self, escalation: Escalation) -> None:
        if self._escalations.closed(escalation):
            if note := timed_out_note(escalation):
                self._human_todo.append(note)
            self._publish()

    # --- human answers -------------------------------------------------------------------

    @workflow.update(name="resolve_escalation")
    async def resolve_escalation(self, answer: Resolution) -> Escalation:
        return await self._resolve(answer)

    async def _resolve(self, answer: Resolution) -> Escalation:
        escalation = self._escalations.answer(answer)
        self._publish()
        await workflow.get_external_workflow_handle(escalation.waiting_workflow_id).signal(
            ESCALATION_ANSWERED, escalation.answer
        )
        return escalation

    @resolve_escalation.validator
    def _validate_resolution(self, answer: Resolution) -> None:
        self._escalations.check(answer)

    @workflow.signal(name="resolve_escalation")
    async def resolve_escalation_signal(self, answer: Resolution) -> None:
        """For `temporal workflow signal` users; an invalid answer is logged and ignored."""
        try:
            self._escalations.check(answer)
        except ApplicationError as err:
            workflow.logger.warning("ignored resolve_escalation signal: %s", err)
            return
        await self._resolve(answer)

    @workflow.update(name="approve")
    def approve(self, answer: ApprovalAnswer) -> Approval:
        return self._answer_approval("approved", answer)

    @approve.validator
    def _validate_approve(self, answer: ApprovalAnswer) -> None:
        self._approvals.pending()

    @workflow.update(name="reject")
    def reject(self, answer: ApprovalAnswer) -> Approval:
        return self._answer_approval("rejected", answer)

    @reject.validator
    def _validate_reject(self, answer: ApprovalAnswer) -> None:
        self._approvals.pending()

    @workflow.signal(name="approve")
    def approve_signal(self, answer: ApprovalAnswer) -> None:
        if self._progress.pending_approval is not None:
            self._answer_approval("approved", answer)

    @workflow.signal(name="reject")
    def reject_signal(self, answer: ApprovalAnswer) -> None:
        if self._progress.pending_approval is not None:
            self._answer_approval("rejected", answer)

    def _answer_approval(
        self, state: Literal["approved", "rejected"], answer: ApprovalAnswer
    ) -> Approval:
        approval = self._approvals.answer(state, answer)
        self._publish()
        return approval

    # --- the run -------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: ExecutionInput) -> ExecutionReport:
        workflow.upsert_search_attributes([sa.PLAN.value_set(request.plan.name)])
        self._status_file.start()
        status = await self._run_to_the_end(request)
        return await self._finish(status)

    async def _run_to_the_end(self, request: ExecutionInput) -> ExecutionStatus:
        """Run the phases; how the run ended."""
        try:
            await self._run_phases(request)
        except StopExecution as stop:
            self._human_todo.append(stop.todo)
            return stop.status
        except (asyncio.CancelledError, ActivityError, ChildWorkflowError) as err:
            # A cancel reaches us directly, or wrapped by the phase it interrupted.
            if not is_cancelled_exception(err):
                self._progress.problems.append(root_message(err))
                self._human_todo.append("Fix the problem listed above and run the plan again.")
                return ExecutionStatus.FAILED
            self._human_todo.append(
                "The execution was cancelled: finished tasks are on the branch; run the "
                "plan again for the rest."
            )
            await self._clean_up_after_cancel()
            return ExecutionStatus.CANCELLED
        return ExecutionStatus.COMPLETED

    async def _finish(self, status: ExecutionStatus) -> ExecutionReport:
        """The report; the handoff, the notices and the status file show the end."""
        await self._answers.close()
        status, notes = outcomes.ending(status, self._progress, self._human_todo)
        self._human_todo += notes
        self._escalations.withdraw_pending()
        self._progress.status = status
        self._publish()
        report = ExecutionReport.from_progress(
            self._progress, human_todo=self._human_todo, finished_at=workflow.now()
        )
        if self._notices.running:
            await self._notices.close()
            await self._handoff.finish(report)
            await self._notices.post(report)
            report.handoff = self._progress.handoff
        await self._status_file.close()  # the final state, exactly, is on disk first
        await self._handlers_finished()
        return report

    async def _run_phases(self, request: ExecutionInput) -> None:
        carry = request.carry
        if carry is None:
            setup = await self._run_setup(request)
            await self._start_notices()
            phase_input = outcomes.phases_input(request, setup)
        else:
            phase_input = PhaseInput.model_validate({**carry.phase, "plan": request.plan})
            if self._progress.workspace is not None:  # one object again, as before the carry
                phase_input.workspace = self._progress.workspace
            self._notices.resume()
            self._answers.start()
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

        passed = len(self._tasks.passed())
        if plan.approval_before_handoff:
            await self._await_approval(
                "before_handoff",
                f"Hand off branch {ws.branch} ({passed} tasks done)? Review it, then approve.",
                phase_input,
            )

        await self._integrate_and_review(phase_input)

    async def _run_setup(self, request: ExecutionInput) -> SetupResult:
        self._set_phase("setup", "running", "preparing the workspace, checking the plan")
        try:
            setup = await self._child(SetupPhaseWorkflow.run, request, "setup")
        except BaseException:
            self._set_phase("setup", "failed", "setup did not finish")
            raise
        self._progress.problems += setup.check.errors
        self._progress.workspace = setup.workspace
        self._tasks.route(setup.check.routes)
        self._conclude("setup", outcomes.setup(setup, request.plan))
        return setup

    async def _implement_and_validate(self, phase_input: PhaseInput) -> None:
        plan = phase_input.plan
        self._set_phase("implementation", "running", f"{len(plan.tasks)} tasks")
        implementation = await self._child(
            ImplementationPhaseWorkflow.run, phase_input, "implementation"
        )
        # With coalesced updates, the last task states come with the result.
        self._tasks.apply_result(implementation)
        self._publish()
        self._reports.record_head(implementation.head)
        self._conclude("implementation", outcomes.implementation(implementation, self._tasks.tasks))

        if not plan.gates:
            self._set_phase("validation", "skipped", "the plan has no system gates")
            return
        self._set_phase("validation", "running", f"{len(plan.gates)} system gates")
        validation = await self._child(ValidationPhaseWorkflow.run, phase_input, "validation")
        self._reports.record_head(validation.head)
        self._conclude("validation", outcomes.validation(validation))

    async def _integrate_and_review(self, phase_input: PhaseInput) -> None:
        ws = phase_input.workspace
        self._set_phase("integration", "running", f"finalising {ws.branch}")
        github = self._handoff.integration_input(self._human_todo)
        integration = await self._child(
            IntegrationPhaseWorkflow.run,
            phase_input.model_copy(update={"github": github}) if github else phase_input,
            "integration",
        )
        self._reports.record_head(integration.head)
        if todo := self._handoff.record_integration(integration.github, ws.branch):
            self._human_todo.append(todo)
        handed_off = self._progress.handoff is not None
        outcome = outcomes.integration(integration, ws.branch, handed_off=handed_off)
        self._conclude("integration", outcome)

        review_github = self._handoff.review_input(github)
        if review_github is not None:
            phase_input = phase_input.model_copy(update={"github": review_github})
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
        self._reports.record_head(review.head)
        self._handoff.record_review(review)
        self._progress.problems += review.problems
        self._progress.review = outcomes.review_note(review)
        self._conclude("review", outcomes.review(review))

    def _conclude(self, phase: PhaseName, outcome: PhaseOutcome) -> None:
        """A phase ended: its line in the progress, notes for the human; a stop ends the run."""
        self._human_todo += outcome.todo
        self._set_phase(phase, outcome.status, outcome.summary)
        if outcome.stop is not None:
            raise outcome.stop

    async def _child(
        self,
        run: MethodAsyncSingleParam[PhaseT, InputT, ResultT],
        arg: InputT,
        phase: PhaseName,
    ) -> ResultT:
        """Run a phase as a child workflow, typed by its run method, and wait for its result."""
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

    # --- approvals and continue-as-new ------------------------------------------------------

    async def _await_approval(
        self, name: ApprovalName, question: str, phase_input: PhaseInput
    ) -> None:
        """Wait for a human's approval, durably, for as long as it takes (handing over to a
        new run when the history grows long); a rejection ends the run."""
        approval, asked_now = self._approvals.ask(name, question)
        if asked_now:
            self._publish()
        await self._approvals.wait(
            approval, hand_over=lambda: self._continue_as_new(name, phase_input, approval)
        )
        self._publish()
        if approval.state == "rejected":
            raise StopExecution(ExecutionStatus.PARTIAL, rejection_note(approval))

    async def _continue_as_new(
        self,
        stage: Literal["before_start", "before_handoff"],
        phase_input: PhaseInput,
        approval: Approval,
    ) -> None:
        notices = self._notices.running
        await self._answers.close()
        await self._notices.pause()
        await self._status_file.close()  # the file shows this moment before the handover
        await self._handlers_finished()
        if approval.state != "pending":
            # Answered while the comment and the file were brought up to date: carry on here.
            if notices:
                self._notices.start()
                self._answers.start()
            self._status_file.start()
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

    async def _handlers_finished(self) -> None:
        """No update or signal handler is cut off by the end of the run or a handover (an
        answer to an escalation may still be on its way to the phase that asked)."""
        if workflow.patched(HANDLERS_PATCH):
            await workflow.wait_condition(workflow.all_handlers_finished)

    async def _start_notices(self) -> None:
        """With a GitHub handoff or a webhook configured: ask whether this worker can reach
        GitHub, then keep the status comment and the webhook informed until the end."""
        if self._notices.wanted() and workflow.patched(HANDOFF_PATCH):
            await self._handoff.check_access()
            self._notices.start()
            self._answers.start()
            self._publish()

    # --- the progress --------------------------------------------------------------------

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
        self._reports.record_head(result.head)
        self._tasks.phase_cancelled()

    def _set_phase(self, name: PhaseName, status: PhaseStatus, summary: str) -> None:
        self._reports.set_phase(name, status, summary)
        self._publish()

    def _publish(self) -> None:
        """The status follows the questions waiting; then everything that shows the progress
        (the Web UI, the status file, the notices) is told it changed."""
        p = self._progress
        if not p.status.finished:
            if p.pending_approval is not None:
                p.status = ExecutionStatus.AWAITING_APPROVAL
            elif p.pending_escalations:
                p.status = ExecutionStatus.ESCALATED
            else:
                p.status = ExecutionStatus.RUNNING
        p.updated_at = workflow.now()
        self._web_ui.show()
        self._status_file.changed()
        self._notices.changed()
