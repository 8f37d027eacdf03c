"""One way to run a plan's command from an activity: a gate, a command specialist, a setup
command (and the environment of a Claude specialist's bash tool).

`command_context` checks the place and builds what the command runs with, `run_command` runs
it (activities/process.py `run_shell`, in the jail of activities/jail.py). Each turns what
keeps a command from running into an `ApplicationError` that starts with what was running
(`what`: "gate 'lint'", "task t1 (coder)", "setup command 'deps'"), so every floor above sees
the same kinds:

- `WorkspaceMissing` (not retryable): the folder the command runs in is not on this worker.
- `MissingVariable` (retryable): a variable the plan passes through (`env_from`) is not set
  on this worker; the message names the variables and the host. Retryable, always: the
  operator can set it and restart the worker (or another worker that has it takes the
  retry), and once the retries are spent the workflow asks a human as for any failure.
- `JailUnavailable` (not retryable): the plan's `confine` cannot be honoured here.
- `<kind>NotStarted` (retryable unless the cause is permanent): the shell did not start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.jail import JailUnavailableError, Sandbox, sandbox_for
from activities.named_pipes import sweep_named_pipes
from activities.process import CommandNotStartedError, ProcessOutcome, run_shell
from activities.process_env import MissingVariableError, command_env
from coordinator.environment import CommandEnvironment


@dataclass(frozen=True)
class CommandContext:
    """What a command runs with: its environment and its jail."""

    env: dict[str, str]
    sandbox: Sandbox


def require_folder(what: str, cwd: Path, place: str) -> None:
    """`place` names the folder in the message: "working directory", "worktree", "folder"."""
    if not cwd.is_dir():
        raise ApplicationError(
            f"{what}: {place} {cwd} does not exist on this worker",
            type="WorkspaceMissing",
            non_retryable=True,
        )


def environment_for(
    what: str,
    environment: CommandEnvironment | None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The command's variables (`process_env.command_env`); a missing `env_from` variable is a
    retryable `MissingVariable` error naming it, the host and `what`."""
    try:
        return command_env(environment, extra)
    except MissingVariableError as err:
        raise ApplicationError(f"{what}: {err}", type="MissingVariable") from err


def jail_for(
    what: str,
    cwd: Path,
    environment: CommandEnvironment | None,
    env: Mapping[str, str],
    readable: Sequence[str] = (),
) -> Sandbox:
    try:
        return sandbox_for(cwd, environment, env, readable=readable)
    except JailUnavailableError as err:
        raise ApplicationError(
            f"{what}: {err}", type="JailUnavailable", non_retryable=True
        ) from err


@dataclass(frozen=True)
class CommandSpec:
    """One command to run for an activity."""

    what: str  # starts every error message
    command: str
    cwd: Path
    environment: CommandEnvironment | None
    timeout: float
    log_path: Path
    slot: Path  # the process-group record: runs sharing a slot go one at a time
    not_started: str  # the error type when the shell does not start, e.g. "GateNotStarted"
    place: str = "working directory"  # what `cwd` is called in messages
    extra_env: Mapping[str, str] = field(default_factory=dict)
    stdin: str | None = None
    readable: Sequence[str] = ()  # more paths the jail lets the command read
    heartbeat: str | None = None  # what heartbeats call the command (default: `what`)


def command_context(spec: CommandSpec) -> CommandContext:
    """Check the folder, then build the environment and the jail, in that order."""
    require_folder(spec.what, spec.cwd, spec.place)
    env = environment_for(spec.what, spec.environment, spec.extra_env)
    return CommandContext(
        env=env, sandbox=jail_for(spec.what, spec.cwd, spec.environment, env, spec.readable)
    )


async def run_command(spec: CommandSpec, context: CommandContext) -> ProcessOutcome:
    """Run it to the end or the timeout (the outcome says which, with the exit code and the
    output's tail); heartbeats name `what` and the log. Afterwards, even when cancelled, the
    named pipes it left in its folder go (activities/named_pipes.py): git, coord's or the
    next command's, would wait on them for ever."""
    try:
        return await run_shell(
            spec.command,
            cwd=spec.cwd,
            env=context.env,
            stdin=spec.stdin,
            timeout=spec.timeout,
            log_path=spec.log_path,
            heartbeat_details=(spec.heartbeat or spec.what, str(spec.log_path)),
            sandbox=context.sandbox,
            slot=spec.slot,
        )
    except CommandNotStartedError as err:
        raise ApplicationError(
            f"{spec.what}: {err}", type=spec.not_started, non_retryable=err.permanent
        ) from err
    finally:
        await sweep_named_pipes(spec.cwd, spec.what)
