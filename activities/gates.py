"""The quality gate activity: run one gate's command and return its verdict."""

from __future__ import annotations

from pathlib import Path

from temporalio import activity

from activities.command_runner import CommandSpec, command_context, run_command
from activities.process import retry_suffix, safe_name
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
        spec = CommandSpec(
            what=f"gate {gate.name!r}",
            heartbeat=f"gate {gate.name}",
            command=gate.run,
            cwd=Path(request.cwd),
            environment=request.environment,
            extra_env=request.env,
            timeout=gate.timeout,
            log_path=self.log_path(request),
            # The runs of this gate at this level and scope, one at a time.
            slot=self.gates_dir(request) / ".processes" / self.gate_id(request),
            not_started="GateNotStarted",
        )
        context = command_context(spec)
        activity.logger.info(
            "gate %s (%s %s): %s", gate.name, request.level, request.scope, gate.run
        )
        outcome = await run_command(spec, context)
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
