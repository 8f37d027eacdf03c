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

from activities.command_runner import CommandSpec, command_context, run_command
from activities.process import ProcessOutcome, retry_suffix
from activities.task_turn import SpecialistActivities
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


class CommandSpecialistActivities(SpecialistActivities):
    def log_path(self, request: SpecialistRequest) -> Path:
        """`<artifacts>/<execution>/tasks/<task>/attempt-<n>[.try<k>].log`."""
        return self.task_dir(request) / f"attempt-{request.attempt}{retry_suffix()}.log"

    @activity.defn(name="run_command_specialist")
    async def run(self, request: SpecialistRequest) -> SpecialistResult:
        return await self.turn(request, self._run)

    async def _run(self, request: SpecialistRequest) -> SpecialistResult:
        where = f"task {request.task_id} ({request.specialist})"
        if request.backend != "command" or not request.command:
            raise ApplicationError(
                f"{where}: specialist {request.specialist!r} has no command to run "
                f"(backend {request.backend!r})",
                type="SpecialistMisconfigured",
                non_retryable=True,
            )
        spec = CommandSpec(
            what=where,
            command=request.command,
            cwd=Path(request.cwd),
            place="worktree",
            environment=request.environment,
            extra_env=task_env(request),
            stdin=request.task_prompt,
            readable=request.context_paths,
            timeout=request.timeout_s,
            log_path=self.log_path(request),
            # Every specialist of the task, attempt after attempt, one at a time.
            slot=self.task_dir(request) / SPECIALIST_SLOT,
            not_started="SpecialistNotStarted",
        )
        context = command_context(spec)
        activity.logger.info("%s attempt %d: %s", where, request.attempt, request.command)
        outcome = await run_command(spec, context)
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
