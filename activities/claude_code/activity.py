"""The activity that runs a `claude-code` specialist: one activity run is one attempt."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.claude.transcript import Transcript
from activities.claude_code import launch, outcome
from activities.claude_code.prompt import system_prompt, task_message
from activities.claude_code.sdk import INSTALL_HINT, bundled_cli
from activities.claude_code.session import RunEnd, RunSpec, SessionRun
from activities.jail import JailUnavailableError, make_private_tmp, remove_private_tmp
from activities.process_env import MissingVariableError
from activities.task_turn import SpecialistActivities
from activities.worktrees import WorktreeActivities
from coordinator.claude import DEFAULT_MAX_TURNS, ClaudeSettings
from coordinator.claude_code import tool_names
from coordinator.specialists import Specialist, SpecialistError, load_specialist_source
from coordinator.work import SpecialistRequest, SpecialistResult

STATE_NAME = "state.json"
TRANSCRIPT_NAME = "transcript.jsonl"


class ClaudeCodeActivities(SpecialistActivities):
    def __init__(
        self,
        artifacts_root: Path,
        settings: ClaudeSettings | None = None,
        worktrees: WorktreeActivities | None = None,
    ) -> None:
        super().__init__(artifacts_root, worktrees)
        self.settings = settings or ClaudeSettings()

    @activity.defn(name="run_claude_code_specialist")
    async def run(self, request: SpecialistRequest) -> SpecialistResult:
        return await self.turn(request, self._run)

    async def _run(self, request: SpecialistRequest) -> SpecialistResult:
        where = f"task {request.task_id} ({request.specialist})"
        cwd = Path(request.cwd)
        if not cwd.is_dir():
            raise _fatal(
                f"{where}: worktree {cwd} does not exist on this worker", "WorkspaceMissing"
            )
        spec = _definition(request, where)
        cli = bundled_cli()
        if cli is None:
            raise _fatal(
                f"{where}: specialist {spec.name} uses the claude-code backend, but this worker "
                f"lacks the claude-agent-sdk package; {INSTALL_HINT}",
                "ClaudeCodeMissing",
            )
        api_key = os.environ.get("ANTHROPIC_API_KEY", "")
        if not api_key:
            raise _fatal(
                f"{where}: ANTHROPIC_API_KEY is not set in the worker's environment; set it "
                "where `coord worker` runs (keys never travel in a plan or in history)",
                "AnthropicCredentials",
            )
        model = self.settings.resolve_model(spec.model, request.model)
        folder = launch.run_dir(self.artifacts_root, request)
        started = time.monotonic()
        tmp = make_private_tmp()
        try:
            try:
                prepared = launch.prepare(request, folder, cli, tmp, api_key)
            except MissingVariableError as err:
                # The one rule of activities/command_runner.py: retryable, so an operator can
                # set it and restart the worker; after the retries a human is asked as usual.
                raise ApplicationError(f"{where}: {err}", type="MissingVariable") from err
            except JailUnavailableError as err:
                raise _fatal(f"{where}: {err}", "JailUnavailable") from err
            run_spec = await asyncio.to_thread(self._run_spec, request, spec, model)
            # Only a retried activity resumes. A first run starts fresh even where an earlier
            # run left its state: the folder is named by task and attempt, which a later
            # round of the same gate loop (`coord-fix-...-{runs}`) can name again.
            retried = activity.info().attempt > 1
            if not retried:
                (folder / STATE_NAME).unlink(missing_ok=True)
            run = SessionRun(
                prepared,
                run_spec,
                transcript=Transcript(folder / TRANSCRIPT_NAME),
                state_path=folder / STATE_NAME,
                settings=self.settings,
            )
            if retried:
                run.resume_from(list(activity.info().heartbeat_details))
            end = await _run(run, where, request.timeout_s)
        finally:
            await asyncio.shield(asyncio.to_thread(remove_private_tmp, tmp))
        if error := outcome.api_error(end, where, model):
            raise error
        transcript = str(folder / TRANSCRIPT_NAME)
        duration = time.monotonic() - started
        return outcome.attempt_result(
            request, spec.name, model, end, transcript, duration, max_turns=run_spec.max_turns
        )

    def _run_spec(self, request: SpecialistRequest, spec: Specialist, model: str) -> RunSpec:
        """Reads the context documents, lists the repository and the plan's agents."""
        return RunSpec(
            system=system_prompt(request, spec.prompt),
            prompt=task_message(request, context_chars=self.settings.context_chars),
            model=model,
            tools=tool_names(spec.tools) or None,
            disallowed_tools=spec.disallowed_tools,
            # The agent file's limit, capped by the plan's.
            max_turns=min(
                [turns for turns in (request.max_turns, spec.max_turns) if turns]
                or [DEFAULT_MAX_TURNS]
            ),
            agents=launch.subagents(spec, request, self.settings),
            max_cost_usd=request.max_cost_usd,
            max_tokens=request.max_tokens,
        )


async def _run(run: SessionRun, where: str, timeout_s: float) -> RunEnd:
    from claude_agent_sdk import ClaudeSDKError, CLINotFoundError

    try:
        return await run.run(timeout_s)
    except CLINotFoundError as err:
        raise _fatal(
            f"{where}: cannot start Claude Code: {err}; {INSTALL_HINT}", "ClaudeCodeMissing"
        ) from err
    except ClaudeSDKError as err:
        # The process died or broke off (a killed run, a lost connection): the retry resumes
        # the session, whose finished tool calls are kept.
        said = " ".join(str(err).split())[:300]
        stderr = " | ".join(run.stderr[-5:])
        raise ApplicationError(
            f"{where}: Claude Code stopped without a result: {said}"
            + (f" ({stderr})" if stderr else ""),
            run.heartbeat_details(),
            type="ClaudeCodeInterrupted",
        ) from err


def _definition(request: SpecialistRequest, where: str) -> Specialist:
    if request.backend != "claude-code" or not request.specialist_source:
        raise _fatal(
            f"{where}: specialist {request.specialist!r} is not a Claude Code specialist with a "
            f"definition file (backend {request.backend!r})",
            "SpecialistMisconfigured",
        )
    try:
        return load_specialist_source(request.specialist_source)
    except SpecialistError as err:
        raise _fatal(
            f"{where}: cannot read the specialist's definition: {err}", "SpecialistMisconfigured"
        ) from err


def _fatal(message: str, kind: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)
