"""The one command runner behind gates, command specialists and setup commands: the same
checks, the same error kinds, the same rule for a missing `env_from` variable."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.command_runner import CommandSpec, command_context, run_command
from activities.command_specialist import CommandSpecialistActivities
from activities.environment import EnvironmentActivities
from activities.gates import GateActivities
from coordinator.environment import CommandEnvironment
from coordinator.execution import SetupCommandRequest
from coordinator.plan import Gate, SetupCommand
from coordinator.work import GateRequest, SpecialistRequest

MISSING = CommandEnvironment(env_from=["COORD_TEST_SURELY_UNSET"])


def spec(tmp_path: Path, **changes: object) -> CommandSpec:
    fields: dict[str, object] = {
        "what": "gate 'lint'",
        "command": "printf '%s' \"$GREETING\"",
        "cwd": tmp_path,
        "environment": CommandEnvironment(env={"GREETING": "hello"}, confine="off"),
        "timeout": 30,
        "log_path": tmp_path / "logs" / "lint.log",
        "slot": tmp_path / "logs" / ".processes" / "lint",
        "not_started": "GateNotStarted",
    }
    return CommandSpec(**(fields | changes))  # type: ignore[arg-type]


async def test_a_command_runs_with_the_plan_environment(tmp_path: Path) -> None:
    run = spec(tmp_path)
    outcome = await ActivityEnvironment().run(run_command, run, command_context(run))
    assert outcome.exit_code == 0 and outcome.output_tail == "hello"
    assert (tmp_path / "logs" / "lint.log").is_file()


def test_a_missing_folder_is_not_retryable_and_says_which(tmp_path: Path) -> None:
    with pytest.raises(ApplicationError) as caught:
        command_context(spec(tmp_path, cwd=tmp_path / "gone", place="worktree"))
    err = caught.value
    assert err.type == "WorkspaceMissing" and err.non_retryable
    assert err.message == f"gate 'lint': worktree {tmp_path / 'gone'} does not exist on this worker"


def test_a_missing_variable_is_retryable_and_says_which_and_where(tmp_path: Path) -> None:
    with pytest.raises(ApplicationError) as caught:
        command_context(spec(tmp_path, environment=MISSING))
    err = caught.value
    assert err.type == "MissingVariable" and not err.non_retryable
    assert err.message.startswith("gate 'lint': env_from: COORD_TEST_SURELY_UNSET not set")
    assert socket.gethostname() in str(err)


async def test_gates_specialists_and_setup_share_the_missing_variable_rule(
    tmp_path: Path,
) -> None:
    """The same kind, retryable, naming what was running, from all three activities."""
    env = ActivityEnvironment()
    gate = GateRequest(
        execution_id="e1",
        level="task",
        scope="t1",
        gate=Gate(name="lint", run="true"),
        cwd=str(tmp_path),
        attempt=1,
        environment=MISSING,
    )
    specialist = SpecialistRequest(
        execution_id="e1",
        task_id="t1",
        task_title="T",
        task_prompt="do it",
        specialist="script",
        backend="command",
        command="true",
        timeout_s=30,
        cwd=str(tmp_path),
        attempt=1,
        environment=MISSING,
    )
    setup = SetupCommandRequest(
        execution_id="e1",
        command=SetupCommand(name="deps", run="true"),
        cwd=str(tmp_path),
        round=1,
        environment=MISSING,
    )
    calls = [
        (GateActivities(tmp_path).run_gate, gate, "gate 'lint'"),
        (CommandSpecialistActivities(tmp_path).run, specialist, "task t1 (script)"),
        (
            EnvironmentActivities(tmp_path, tmp_path).run_setup_command,
            setup,
            "setup command 'deps'",
        ),
    ]
    for method, request, what in calls:
        with pytest.raises(ApplicationError) as caught:
            await env.run(method, request)  # type: ignore[arg-type]
        err = caught.value
        assert err.type == "MissingVariable" and not err.non_retryable, what
        assert err.message.startswith(f"{what}: env_from: COORD_TEST_SURELY_UNSET"), err.message
