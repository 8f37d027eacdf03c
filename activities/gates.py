"""The quality gate activity: run one gate's command and return its verdict."""

from __future__ import annotations

from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.jail import JailUnavailableError, sandbox_for
from activities.process import (
    CommandNotStartedError,
    MissingVariableError,
    command_env,
    retry_suffix,
    run_shell,
    safe_name,
)
from coordinator.work import GateRequest, GateResult


class GateActivities:
    def __init__(self, artifacts_root: Path) -> None:
        self.artifacts_root = artifacts_root

    def log_path(self, request: GateRequest) -> Path:
        """`<artifacts>/<execution>/gates/<level>-<scope>-<gate>-<attempt>[.try<n>].log`."""
        name = f"{self.gate_id(request)}-{request.attempt}{retry_suffix()}.log"
        return self.gates_dir(request) / name

    def gates_dir(self, request: GateRequest) -> Path:
        return self.artifacts_root / safe_name(request.execution_id) / "gates"

    @staticmethod
    def gate_id(request: GateRequest) -> str:
        return "-".join((request.level, safe_name(request.scope), safe_name(request.gate.name)))

    @activity.defn(name="run_gate")
    async def run_gate(self, request: GateRequest) -> GateResult:
        """A failing gate is a result (`passed` False), never an exception: the workflow
        decides what follows. Exceptions are for a gate that could not run at all."""
        gate = request.gate
        cwd = Path(request.cwd)
        if not cwd.is_dir():
            raise ApplicationError(
                f"gate {gate.name!r}: working directory {cwd} does not exist on this worker",
                type="WorkspaceMissing",
                non_retryable=True,
            )
        try:
            env = command_env(request.environment, request.env)
        except MissingVariableError as err:
            # Another worker may have it: retryable.
            raise ApplicationError(f"gate {gate.name!r}: {err}", type="MissingVariable") from err
        try:
            sandbox = sandbox_for(cwd, request.environment, env)
        except JailUnavailableError as err:
            raise ApplicationError(
                f"gate {gate.name!r}: {err}", type="JailUnavailable", non_retryable=True
            ) from err
        log_path = self.log_path(request)
        activity.logger.info(
            "gate %s (%s %s): %s", gate.name, request.level, request.scope, gate.run
        )
        try:
            outcome = await run_shell(
                gate.run,
                cwd=cwd,
                env=env,
                stdin=None,
                timeout=gate.timeout,
                log_path=log_path,
                heartbeat_details=(f"gate {gate.name}", str(log_path)),
                sandbox=sandbox,
                # The runs of this gate at this level and scope, one at a time.
                slot=self.gates_dir(request) / ".processes" / self.gate_id(request),
            )
        except CommandNotStartedError as err:
            raise ApplicationError(
                f"gate {gate.name!r}: {err}", type="GateNotStarted", non_retryable=err.permanent
            ) from err
        passed = outcome.exit_code == 0 and not (
            gate.expect == "empty_output" and outcome.visible_output
        )
        return GateResult(
            name=gate.name,
            level=request.level,
            scope=request.scope,
            passed=passed,
            exit_code=outcome.exit_code,
            timed_out=outcome.timed_out,
            expect=gate.expect,
            duration_s=outcome.duration_s,
            output_tail=outcome.output_tail,
            log_path=str(outcome.log_path),
        )
