"""The command specialist activity: one attempt at a task by a command-line agent or script.

The task is handed over in `COORD_*` environment variables (see `task_env`) and the prompt on
stdin as well, for agents that read it there. Exit 0 is done; anything else, or the timeout,
is a failed attempt returned as a result for the fix loop. Exceptions are kept for what no
attempt of the task can change: a missing worktree, a specialist without a command.
"""

from __future__ import annotations

import os
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.jail import JailUnavailableError, sandbox_for
from activities.process import (
    CommandNotStartedError,
    MissingVariableError,
    ProcessOutcome,
    command_env,
    retry_suffix,
    run_shell,
    safe_name,
)
from coordinator.work import SUMMARY_CHARS, SpecialistRequest, SpecialistResult

# In a task's artifacts: the process groups of its specialist's commands (process_groups.py).
SPECIALIST_SLOT = ".specialist-processes"


def task_env(request: SpecialistRequest) -> dict[str, str]:
    """What the command learns about its task, in variables (documented in specialists/)."""
    return {
        "COORD_TASK_ID": request.task_id,
        "COORD_TASK_TITLE": request.task_title,
        "COORD_TASK_PROMPT": request.task_prompt,
        "COORD_ATTEMPT": str(request.attempt),
        "COORD_FEEDBACK": request.feedback,
        "COORD_GUIDANCE": request.guidance,
        "COORD_WORKSPACE": request.cwd,
        "COORD_CONTEXT": os.pathsep.join(request.context_paths),
        "COORD_FILES": "\n".join(request.files),
    }


def last_line(output: str) -> str:
    for line in reversed(output.splitlines()):
        if line.strip():
            return _clip(line.strip())
    return ""


def _clip(text: str) -> str:
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def summarize(outcome: ProcessOutcome, timeout_s: int) -> str:
    """One line for the UI and the report: what the attempt said, or what went wrong."""
    line = last_line(outcome.output_tail)
    if outcome.timed_out:
        what = f"timed out after {timeout_s} s"
    elif outcome.exit_code == 0:
        return line or "done (no output)"
    elif outcome.exit_code is not None and outcome.exit_code < 0:
        what = f"killed by signal {-outcome.exit_code}"
    else:
        what = f"exited with code {outcome.exit_code}"
    return _clip(f"{what}: {line}" if line else what)


class CommandSpecialistActivities:
    def __init__(self, artifacts_root: Path) -> None:
        self.artifacts_root = artifacts_root

    def log_path(self, request: SpecialistRequest) -> Path:
        """`<artifacts>/<execution>/tasks/<task>/attempt-<n>[.try<k>].log`."""
        return self.task_dir(request) / f"attempt-{request.attempt}{retry_suffix()}.log"

    def task_dir(self, request: SpecialistRequest) -> Path:
        return (
            self.artifacts_root
            / safe_name(request.execution_id)
            / "tasks"
            / safe_name(request.task_id)
        )

    @activity.defn(name="run_command_specialist")
    async def run(self, request: SpecialistRequest) -> SpecialistResult:
        where = f"task {request.task_id} ({request.specialist})"
        if request.backend != "command" or not request.command:
            raise ApplicationError(
                f"{where}: specialist {request.specialist!r} has no command to run "
                f"(backend {request.backend!r})",
                type="SpecialistMisconfigured",
                non_retryable=True,
            )
        cwd = Path(request.cwd)
        if not cwd.is_dir():
            raise ApplicationError(
                f"{where}: worktree {cwd} does not exist on this worker",
                type="WorkspaceMissing",
                non_retryable=True,
            )
        try:
            env = command_env(request.environment, task_env(request))
        except MissingVariableError as err:
            # Another worker may have it: retryable.
            raise ApplicationError(f"{where}: {err}", type="MissingVariable") from err
        try:
            sandbox = sandbox_for(cwd, request.environment, env, readable=request.context_paths)
        except JailUnavailableError as err:
            raise ApplicationError(
                f"{where}: {err}", type="JailUnavailable", non_retryable=True
            ) from err
        log_path = self.log_path(request)
        activity.logger.info("%s attempt %d: %s", where, request.attempt, request.command)
        try:
            outcome = await run_shell(
                request.command,
                cwd=cwd,
                env=env,
                stdin=request.task_prompt,
                timeout=request.timeout_s,
                log_path=log_path,
                heartbeat_details=(where, str(log_path)),
                sandbox=sandbox,
                # Every specialist of the task, attempt after attempt, one at a time.
                slot=self.task_dir(request) / SPECIALIST_SLOT,
            )
        except CommandNotStartedError as err:
            raise ApplicationError(
                f"{where}: {err}", type="SpecialistNotStarted", non_retryable=err.permanent
            ) from err
        return SpecialistResult(
            task_id=request.task_id,
            specialist=request.specialist,
            attempt=request.attempt,
            ok=outcome.exit_code == 0,
            summary=summarize(outcome, request.timeout_s),
            exit_code=outcome.exit_code,
            timed_out=outcome.timed_out,
            duration_s=outcome.duration_s,
            output_tail=outcome.output_tail,
            log_path=str(outcome.log_path),
        )
