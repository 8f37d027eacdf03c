"""ExecutionWorkflow: one run of a plan. Runs the phases as child workflows; the one control
surface for humans (the `progress` query now; approvals and escalations with the engine)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ChildWorkflowError,
    FailureError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from coordinator.execution import ExecutionInput, SetupResult
    from coordinator.report import (
        PHASES,
        ExecutionReport,
        ExecutionStatus,
        PhaseName,
        PhaseState,
        PhaseStatus,
        Progress,
        TaskState,
    )
    from workflows import search_attributes as sa
    from workflows.setup_phase import SetupPhaseWorkflow

# The phases after setup arrive with the execution engine; until then an execution
# prepares its workspace and stops there, saying so in its report.
ENGINE_PENDING = (
    "The implementation, validation, integration and review phases are not available in this "
    "version: the workspace and branch are ready, no specialist has run yet."
)
DETAILS_TASK_ROWS = 50  # the Web UI shows a summary table, not a thousand rows


@workflow.defn(name="ExecutionWorkflow")
class ExecutionWorkflow:
    @workflow.init
    def __init__(self, request: ExecutionInput) -> None:
        self._progress = Progress(
            execution_id=request.execution_id,
            plan_name=request.plan.name,
            phases=[PhaseState(name=name) for name in PHASES],
            tasks=[
                TaskState(
                    id=t.id,
                    title=t.title,
                    layer=t.layer,
                    depends_on=list(t.depends_on or []),
                    specialist=t.specialist,
                )
                for t in request.plan.tasks
            ],
            started_at=workflow.now(),
        )

    @workflow.query
    def progress(self) -> Progress:
        return self._progress

    @workflow.run
    async def run(self, request: ExecutionInput) -> ExecutionReport:
        workflow.upsert_search_attributes([sa.PLAN.value_set(request.plan.name)])
        human_todo: list[str] = []
        try:
            setup = await self._run_setup(request)
            if setup.ok:
                for name in PHASES[1:]:
                    self._set_phase(name, "not_available", "arrives with the execution engine")
                self._progress.status = ExecutionStatus.PARTIAL
                human_todo.append(ENGINE_PENDING)
            else:
                self._progress.status = ExecutionStatus.FAILED
                human_todo.append("Fix the problems listed above and run the plan again.")
        except (asyncio.CancelledError, ActivityError, ChildWorkflowError) as err:
            # A cancel reaches us directly, or wrapped by the phase child it interrupted.
            if is_cancelled_exception(err):
                self._progress.status = ExecutionStatus.CANCELLED
                human_todo.append("The execution was cancelled; run the plan again to continue.")
            else:
                self._progress.status = ExecutionStatus.FAILED
                self._progress.problems.append(_root_message(err))
                human_todo.append("Fix the problem listed above and run the plan again.")
        self._publish()
        return ExecutionReport.from_progress(
            self._progress, human_todo=human_todo, finished_at=workflow.now()
        )

    async def _run_setup(self, request: ExecutionInput) -> SetupResult:
        self._set_phase("setup", "running", "checking the plan, preparing the workspace")
        try:
            setup = await workflow.execute_child_workflow(
                SetupPhaseWorkflow.run,
                request,
                id=f"{request.execution_id}/setup",
                static_summary=f"setup: {request.plan.name}",
                execution_timeout=timedelta(hours=2),
            )
        except BaseException:
            self._set_phase("setup", "failed", "setup did not finish")
            raise
        self._progress.problems += setup.check.errors
        self._progress.workspace = setup.workspace
        for task in self._progress.tasks:
            task.specialist = setup.check.routes.get(task.id, task.specialist)
        if setup.ok:
            ws = setup.workspace
            self._set_phase("setup", "done", f"branch {ws.branch} from {ws.base_branch}")
        else:
            self._set_phase("setup", "failed", f"{len(setup.check.errors)} plan problem(s)")
        return setup

    def _set_phase(self, name: PhaseName, status: PhaseStatus, summary: str) -> None:
        now = workflow.now()
        for phase in self._progress.phases:
            if phase.name == name:
                if status == "running":
                    phase.started_at = now
                    self._progress.phase = name
                elif status in ("done", "failed"):
                    phase.finished_at = now
                phase.status = status
                phase.summary = summary
        self._publish()

    def _publish(self) -> None:
        """Keep what the Web UI shows (search attributes, current details) in step."""
        p = self._progress
        p.updated_at = workflow.now()
        workflow.upsert_search_attributes(
            [
                sa.STATUS.value_set(p.status.value),
                sa.PHASE.value_set(p.phase),
                sa.PROGRESS.value_set(p.percent),
            ]
        )
        workflow.set_current_details(_details_markdown(p))


def _details_markdown(p: Progress) -> str:
    lines = [
        f"**{p.plan_name}**: {p.status.value}, phase {p.phase}, {p.percent}% of tasks done",
        "",
        "| phase | status | summary |",
        "|---|---|---|",
    ]
    lines += [f"| {ph.name} | {ph.status} | {ph.summary} |" for ph in p.phases]
    lines += ["", "| task | specialist | status | attempts |", "|---|---|---|---|"]
    lines += [
        f"| {t.id} | {t.specialist or '-'} | {t.status} | {t.attempts} |"
        for t in p.tasks[:DETAILS_TASK_ROWS]
    ]
    if len(p.tasks) > DETAILS_TASK_ROWS:
        lines.append(f"| … {len(p.tasks) - DETAILS_TASK_ROWS} more | | | |")
    return "\n".join(lines)


def _root_message(err: BaseException) -> str:
    """The first error under the child/activity wrappers: it says what actually went wrong."""
    while isinstance(err, ActivityError | ChildWorkflowError) and err.__cause__ is not None:
        err = err.__cause__
    return err.message if isinstance(err, FailureError) else str(err)
