"""SetupPhase: prepare the workspace and branch, check the plan again there, route every task;
then, for plans that ask, prepare the environment: the context documents, the prepared-
environment folder and the setup commands (three attempts each, then a human decides)."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from coordinator.environment import CommandEnvironment, status_file_path
    from coordinator.escalation import Action, Escalation
    from coordinator.execution import (
        ExecutionInput,
        PlanCheckInput,
        PrepareEnvironmentInput,
        PrepareWorkspaceInput,
        SetupCommandRequest,
        SetupResult,
        default_branch,
    )
    from coordinator.plan import SetupCommand
    from workflows import steps
    from workflows.phase import WORKSPACE_READY, PhaseWorkflow, root_message
    from workflows.until_resolved import ATTEMPTS, Done, Miss, Retry, UntilResolved, retry_or


@workflow.defn(name="SetupPhase")
class SetupPhaseWorkflow(PhaseWorkflow):
    @workflow.run
    async def run(self, request: ExecutionInput) -> SetupResult:
        plan = request.plan
        # Clone first: a repository named by URL brings its own specialists, which the
        # check below must see. A missing repository fails here, with its path.
        workspace = await steps.prepare_workspace(
            PrepareWorkspaceInput(
                execution_id=request.execution_id,
                repository=request.repository,
                base_branch=plan.base_branch,
                branch=plan.branch or default_branch(request.execution_id),
                remote_home=not (plan.approval.before_start or plan.approval_before_handoff),
            ),
            summary=f"prepare workspace: clone {request.repository}",
        )
        # A plan that became invalid since `coord run` is reported, not run.
        # On the workspace's host, like every step that reads the clone.
        check = await steps.check_plan(
            workspace,
            PlanCheckInput(plan=plan, plan_dir=request.plan_dir, workspace=workspace.path),
        )
        result = SetupResult(workspace=workspace, check=check)
        if result.ok:
            await self._prepare_environment(request, result)
        return result

    async def _prepare_environment(self, request: ExecutionInput, result: SetupResult) -> None:
        """Only for plans with the fields that ask for it: other plans run as they always did."""
        plan = request.plan
        status_file = status_file_path(plan.status_file, request.execution_id)
        if status_file:
            # The execution writes the status file from now on (a setup escalation included).
            await self._tell_execution(WORKSPACE_READY, result.workspace)
        env_dir = None
        if plan.setup or plan.context or status_file:
            prepared = await steps.prepare_environment(
                result.workspace,
                PrepareEnvironmentInput(
                    execution_id=request.execution_id,
                    workspace=result.workspace.path,
                    plan_dir=request.plan_dir,
                    context=plan.context,
                    make_env_dir=bool(plan.setup),
                    status_file=status_file,
                ),
            )
            env_dir = prepared.env_dir
            result.context_paths = prepared.context_paths
        environment = CommandEnvironment(
            env=plan.env, env_from=plan.env_from, env_dir=env_dir, confine=plan.confine
        )
        result.environment = None if environment.empty else environment
        for command in plan.setup:
            action = await self._run_setup_command(request, result, command)
            if action == Action.SKIP:
                result.skipped_setup.append(command.name)
            elif action == Action.ABORT:
                result.aborted = True
                return

    async def _run_setup_command(
        self, request: ExecutionInput, result: SetupResult, command: SetupCommand
    ) -> Action | None:
        """None when the command succeeded; else what the human chose instead of a retry.
        The activity's own retries are the three strikes: each failure asks a human."""
        until = UntilResolved[Action | None](strikes=1)
        failed: list[ActivityError] = []

        async def attempt(strike: int) -> Done[Action | None] | Miss:
            try:
                await steps.run_setup_command(
                    result.workspace,
                    SetupCommandRequest(
                        execution_id=request.execution_id,
                        command=command,
                        cwd=result.workspace.path,
                        environment=result.environment,
                        round=until.tries,
                    ),
                )
                return Done(None)
            except ActivityError as err:
                if is_cancelled_exception(err):
                    raise
                failed.append(err)
                return Miss.STRIKE

        async def ask() -> Retry | Done[Action | None]:
            answer = await self.escalate(request, _setup_escalation(command, failed[-1]))
            return retry_or(answer, lambda answer: answer.action)

        return await until.run(attempt, ask)


def _setup_escalation(command: SetupCommand, err: ActivityError) -> Escalation:
    tail, logs = _failure_details(err)
    return Escalation(
        id=f"setup:{_safe(command.name)}",
        phase="setup",
        reason=f"setup command '{command.name}' failed {ATTEMPTS} times",
        question=f"Setup command '{command.name}' ({command.run}) keeps failing, before any "
        "specialist ran: retry it (after fixing the cause on the worker), skip it (run "
        "without it), or abort?",
        last_error=root_message(err),
        output_tail=tail[-4000:],
        attempts=ATTEMPTS,
        artifacts=logs,
        recommended=[
            "Read the setup log listed under artifacts",
            "Fix what is missing on the worker (a tool, a network share, a "
            "credential in env_from), then --retry",
            "--skip only if gates and specialists do not need it",
        ],
    )


def _failure_details(err: ActivityError) -> tuple[str, list[str]]:
    """The output tail and the log of a failed setup command, as the activity reported them."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.details:
        details = cause.details[0]
        if isinstance(details, dict):
            log = details.get("log_path")
            return str(details.get("output_tail", "")), [str(log)] if log else []
    return "", []


def _safe(name: str) -> str:
    """Setup command names go into escalation ids: keep them to id characters."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name.lower())
    return cleaned.strip("-.") or "command"
