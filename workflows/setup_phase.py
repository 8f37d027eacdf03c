"""SetupPhase: prepare the workspace and branch, check the plan again there, route every task."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.workspace import WorkspaceActivities
    from coordinator.execution import (
        ExecutionInput,
        PlanCheckInput,
        PrepareWorkspaceInput,
        SetupResult,
        default_branch,
    )
    from workflows import steps

# Three attempts is the product's rule for every retryable step.
RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1))


@workflow.defn(name="SetupPhase")
class SetupPhaseWorkflow:
    @workflow.run
    async def run(self, request: ExecutionInput) -> SetupResult:
        plan = request.plan
        # Clone first: a repository named by URL brings its own specialists, which the
        # check below must see. A missing repository fails here, with its path.
        workspace = await workflow.execute_activity_method(
            WorkspaceActivities.prepare_workspace,
            PrepareWorkspaceInput(
                execution_id=request.execution_id,
                repository=request.repository,
                base_branch=plan.base_branch,
                branch=plan.branch or default_branch(request.execution_id),
            ),
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
            summary=f"prepare workspace: clone {request.repository}",
        )
        # A plan that became invalid since `coord run` is reported, not run.
        # On the workspace's host, like every step that reads the clone.
        check = await steps.check_plan(
            workspace,
            PlanCheckInput(plan=plan, plan_dir=request.plan_dir, workspace=workspace.path),
        )
        return SetupResult(workspace=workspace, check=check)
