"""The Claude specialist activity: the shell around the agent loop (activities/claude/loop.py).

One activity run is one attempt at a task. The shell checks what no attempt can change (the
worktree, the definition, the key, a price for a cost budget), builds the brief, the bash
environment and the client, and runs the loop with what it needs from Temporal handed in:
whether this is a retried attempt (the loop then resumes its transcript), the activity's
logger, and heartbeats carrying where a resume would start and what was spent.

Errors: what retrying can fix (429, 529, 5xx, timeouts, dropped connections) is raised as
retryable, honouring `retry-after`; what it cannot (400, 401, 403, 404, 413, a missing key) is
raised non-retryable with a message that ends up in the escalation. The SDK's own retries are
off: Temporal's three attempts are the only ones.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import anthropic
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.claude.brief import system_prompt
from activities.claude.loop import AgentLoop, LoopOutcome
from activities.claude.toolbox import BashSetup
from activities.claude.transcript import Transcript
from activities.command_runner import environment_for, jail_for, require_folder
from activities.command_specialist import SPECIALIST_SLOT
from activities.heartbeat import heartbeating_live
from activities.jail import Sandbox, make_private_tmp, remove_private_tmp
from activities.task_turn import SpecialistActivities
from activities.worktrees import WorktreeActivities
from coordinator.claude import AgentAttempt, ClaudeSettings, Usage
from coordinator.specialists import Specialist, SpecialistError, load_specialist_source
from coordinator.tool_rules import ToolPermissions, permissions_for
from coordinator.work import OUTPUT_TAIL_BYTES, SpecialistRequest, SpecialistResult

HEARTBEAT_EVERY_S = 5.0

_warned_tools: set[tuple[str, str]] = set()  # (specialist, tool): each unknown name once


class ClaudeSpecialistActivities(SpecialistActivities):
    def __init__(
        self,
        artifacts_root: Path,
        settings: ClaudeSettings | None = None,
        worktrees: WorktreeActivities | None = None,
    ) -> None:
        super().__init__(artifacts_root, worktrees)
        self.settings = settings or ClaudeSettings()

    def transcript_path(self, request: SpecialistRequest) -> Path:
        """One transcript per attempt of the task; a retried activity continues it."""
        return self.task_dir(request) / f"attempt-{request.attempt}.transcript.jsonl"

    @activity.defn(name="run_claude_specialist")
    async def run(self, request: SpecialistRequest) -> SpecialistResult:
        return await self.turn(request, self._run)

    async def _run(self, request: SpecialistRequest) -> SpecialistResult:
        where = f"task {request.task_id} ({request.specialist})"
        cwd = Path(request.cwd)
        require_folder(where, cwd, "worktree")
        spec = _load_definition(request, where)
        api_key = _api_key(where)
        model = self._priced_model(spec, request, where)
        perms = _permissions(spec)
        started = time.monotonic()
        transcript = Transcript(self.transcript_path(request))
        # Reads the context documents and lists the repository: off the event loop.
        system = await asyncio.to_thread(
            system_prompt,
            request,
            spec.prompt,
            context_chars=self.settings.context_chars,
            tools_note=_tools_note(perms),
        )
        bash_env, sandbox = self._bash_environment(request, cwd, where)
        # One private /tmp and HOME for the attempt's bash commands, as in a developer's shell.
        tmp = make_private_tmp()
        try:
            loop = AgentLoop(
                system=system,
                bash=BashSetup(
                    env=bash_env,
                    sandbox=sandbox.with_tmp(tmp),
                    slot=self.task_dir(request) / SPECIALIST_SLOT,
                    log_dir=self.task_dir(request) / f"attempt-{request.attempt}.bash",
                ),
                request=request,
                spec=spec,
                model=model,
                perms=perms,
                settings=self.settings,
                transcript=transcript,
                client=self._client(api_key),
                where=where,
                # The only Temporal the loop sees, handed in: a retried activity resumes.
                resuming=activity.info().attempt > 1,
                activity_attempt=activity.info().attempt,
                logger=activity.logger,
            )
            # Beat during model calls and tool runs; the details say where a resume would start.
            async with heartbeating_live(
                lambda: [loop.heartbeat_details()], every=HEARTBEAT_EVERY_S
            ):
                outcome = await loop.run()
        finally:
            await asyncio.shield(asyncio.to_thread(remove_private_tmp, tmp))
        duration_s = time.monotonic() - started
        cost = self.settings.cost(model, outcome.usage)
        return _result(request, spec, model, outcome, transcript, duration_s, cost=cost)

    def _client(self, api_key: str) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=api_key,
            max_retries=0,  # Temporal owns retries (three attempts, retry-after honoured)
            timeout=self.settings.request_timeout,
        )

    def _priced_model(self, spec: Specialist, request: SpecialistRequest, where: str) -> str:
        """The model to call; a cost budget needs its price."""
        model = self.settings.resolve_model(spec.model, request.model)
        if request.max_cost_usd is not None and self.settings.cost(model, Usage()) is None:
            raise ApplicationError(
                f"{where}: model {model!r} has no price in the worker's claude.prices, so a "
                "cost budget (the plan's budget or the task's max_cost) cannot be kept; add "
                "its price per million tokens to temporal-dev.yaml",
                type="ModelUnpriced",
                non_retryable=True,
            )
        return model

    def _bash_environment(
        self, request: SpecialistRequest, cwd: Path, where: str
    ) -> tuple[dict[str, str], Sandbox]:
        """What the bash tool's commands run with: the plan's prepared environment, env and
        env_from without the worker's secrets, in the plan's jail."""
        bash_env = environment_for(where, request.environment)
        bash_env = {k: v for k, v in bash_env.items() if k not in self.settings.secret_env}
        return bash_env, jail_for(where, cwd, request.environment, bash_env, request.context_paths)


def _api_key(where: str) -> str:
    api_key = os.environ.get("ANTHROPIC_API_KEY", "")
    if not api_key:
        raise ApplicationError(
            f"{where}: ANTHROPIC_API_KEY is not set in the worker's environment; set it "
            "where `coord worker` runs (keys never travel in a plan or in history)",
            type="AnthropicCredentials",
            non_retryable=True,
        )
    return api_key


def _permissions(spec: Specialist) -> ToolPermissions:
    """The specialist's tools; an unknown name is warned about once per worker."""
    perms = permissions_for(spec.tools)
    for name in perms.unknown:
        if (spec.name, name) not in _warned_tools:
            _warned_tools.add((spec.name, name))
            activity.logger.warning(
                "specialist %s: tool %r is unknown here and was ignored", spec.name, name
            )
    return perms


def _load_definition(request: SpecialistRequest, where: str) -> Specialist:
    if request.backend != "claude" or not request.specialist_source:
        raise ApplicationError(
            f"{where}: specialist {request.specialist!r} is not a Claude specialist with a "
            f"definition file (backend {request.backend!r})",
            type="SpecialistMisconfigured",
            non_retryable=True,
        )
    try:
        return load_specialist_source(request.specialist_source)
    except SpecialistError as err:
        raise ApplicationError(
            f"{where}: cannot read the specialist's definition: {err}",
            type="SpecialistMisconfigured",
            non_retryable=True,
        ) from err


def _tools_note(perms: ToolPermissions) -> str:
    notes = []
    if not perms.write:
        notes.append("You may not change files: the editor is view-only for you.")
    if not perms.bash:
        notes.append("You have no shell.")
    return ("\n\n" + " ".join(notes)) if notes else ""


def _result(
    request: SpecialistRequest,
    spec: Specialist,
    model: str,
    outcome: LoopOutcome,
    transcript: Transcript,
    duration_s: float,
    *,
    cost: float | None,
) -> SpecialistResult:
    usage = outcome.usage
    ok = outcome.stop_reason in ("finish", "end_turn")
    if request.role == "review":
        # Only an explicit approval approves: a reply without a verdict is no verdict.
        ok = ok and outcome.finish is not None and outcome.finish.verdict == "approve"
    tail = outcome.summary + ("\n\n" + outcome.detail if outcome.detail else "")
    return SpecialistResult(
        task_id=request.task_id,
        specialist=spec.name,
        attempt=request.attempt,
        ok=ok,
        summary=outcome.summary,
        exit_code=None,
        timed_out=False,
        duration_s=duration_s,
        output_tail=tail[-OUTPUT_TAIL_BYTES:],
        log_path=str(transcript.path),
        tokens_in=usage.input_tokens
        + usage.cache_creation_input_tokens
        + usage.cache_read_input_tokens,
        tokens_out=usage.output_tokens,
        cost_usd=cost,
        agent=AgentAttempt(
            model=model,
            turns=outcome.turns,
            stop_reason=outcome.stop_reason,
            transcript_path=str(transcript.path),
            usage=usage,
            finish=outcome.finish,
            resumed_from_turn=outcome.resumed_from_turn,
        ),
    )
