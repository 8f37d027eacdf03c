"""The Claude specialist activity: our own tool-use loop over the Messages API.

One activity run is one attempt at a task. The loop streams each model call (long answers
neither hit the non-streaming limit nor starve heartbeats), answers every `tool_use` with a
`tool_result` in the next message, and ends on `finish`, on a plain `end_turn`, or as a failed
attempt on `max_turns`, the budget, or a stuck loop (the same call with the same result three
times in a row).

Durability: every turn is appended to the attempt's transcript before the next begins; when
Temporal retries the activity (a crashed worker, an overloaded API), the conversation resumes
from the last complete turn. Errors: what retrying can fix (429, 529, 5xx, timeouts, dropped
connections) is raised as retryable, honouring `retry-after`; what it cannot (400, 401, 403,
404, 413, a missing key) is raised non-retryable with a message that ends up in the
escalation. The SDK's own retries are off: Temporal's three attempts are the only ones.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import anthropic
import httpx2
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.claude.brief import system_prompt
from activities.claude.tools import (
    BashTool,
    EditorTool,
    SearchTool,
    ToolPermissions,
    ToolResult,
    permissions_for,
    tool_definitions,
)
from activities.claude.transcript import Resumed, Transcript
from activities.command_runner import environment_for, jail_for
from activities.command_specialist import SPECIALIST_SLOT
from activities.jail import (
    Sandbox,
    make_private_tmp,
    remove_private_tmp,
)
from activities.process import safe_name
from coordinator.claude import (
    DEFAULT_MAX_TURNS,
    AgentAttempt,
    AttemptSpend,
    ClaudeSettings,
    FinishReport,
    StopReason,
    Usage,
)
from coordinator.specialists import Specialist, SpecialistError, load_specialist_source
from coordinator.work import OUTPUT_TAIL_BYTES, SUMMARY_CHARS, SpecialistRequest, SpecialistResult

STUCK_REPEATS = 3
HEARTBEAT_EVERY_S = 5.0
RESULT_LOG_CHARS = 2000  # of each tool result, in the stuck detector's memory

FINISH_TOOL: dict[str, Any] = {
    "name": "finish",
    "description": (
        "End your work on this task. Call it once, when the task is done (status 'done') or "
        "when you cannot go on without a human (status 'blocked', saying what they must "
        "decide). Reviewers also give a verdict and findings."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["done", "blocked"]},
            "summary": {"type": "string", "description": "what you did, or why you are blocked"},
            "files_changed": {"type": "array", "items": {"type": "string"}},
            "notes_for_reviewer": {"type": "string"},
            "verdict": {"type": "string", "enum": ["approve", "changes_requested"]},
            "findings": {
                "type": "array",
                "items": {"type": "string"},
                "description": "reviewers: 'path:line: what to change', most important first",
            },
        },
        "required": ["status", "summary"],
    },
}

_warned_tools: set[tuple[str, str]] = set()  # (specialist, tool): each unknown name once


@dataclass
class LoopOutcome:
    stop_reason: StopReason
    summary: str
    detail: str = ""  # the feedback for the next attempt, or the notes for the reviewer
    finish: FinishReport | None = None
    turns: int = 0
    usage: Usage = field(default_factory=Usage)
    model_calls: int = 0
    resumed_from_turn: int = 0


class ClaudeSpecialistActivities:
    def __init__(self, artifacts_root: Path, settings: ClaudeSettings | None = None) -> None:
        self.artifacts_root = artifacts_root
        self.settings = settings or ClaudeSettings()

    def attempt_dir(self, request: SpecialistRequest) -> Path:
        return (
            self.artifacts_root
            / safe_name(request.execution_id)
            / "tasks"
            / safe_name(request.task_id)
        )

    def transcript_path(self, request: SpecialistRequest) -> Path:
        """One transcript per attempt of the task; a retried activity continues it."""
        return self.attempt_dir(request) / f"attempt-{request.attempt}.transcript.jsonl"

    @activity.defn(name="run_claude_specialist")
    async def run(self, request: SpecialistRequest) -> SpecialistResult:
        where = f"task {request.task_id} ({request.specialist})"
        cwd = Path(request.cwd)
        if not cwd.is_dir():
            raise ApplicationError(
                f"{where}: worktree {cwd} does not exist on this worker",
                type="WorkspaceMissing",
                non_retryable=True,
            )
        spec = _load_definition(request, where)
        api_key = os.environ.get("ANTHROPIC_API_KEY", "")
        if not api_key:
            raise ApplicationError(
                f"{where}: ANTHROPIC_API_KEY is not set in the worker's environment; set it "
                "where `coord worker` runs (keys never travel in a plan or in history)",
                type="AnthropicCredentials",
                non_retryable=True,
            )
        model = self.settings.resolve_model(spec.model, request.model)
        if request.max_cost_usd is not None and self.settings.cost(model, Usage()) is None:
            raise ApplicationError(
                f"{where}: model {model!r} has no price in the worker's claude.prices, so a "
                "cost budget (the plan's budget or the task's max_cost) cannot be kept; add "
                "its price per million tokens to temporal-dev.yaml",
                type="ModelUnpriced",
                non_retryable=True,
            )
        perms = permissions_for(spec.tools)
        for name in perms.unknown:
            if (spec.name, name) not in _warned_tools:
                _warned_tools.add((spec.name, name))
                activity.logger.warning(
                    "specialist %s: tool %r is unknown here and was ignored", spec.name, name
                )
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
            loop = _AgentLoop(
                system=system,
                bash_env=bash_env,
                sandbox=sandbox.with_tmp(tmp),
                slot=self.attempt_dir(request) / SPECIALIST_SLOT,
                request=request,
                spec=spec,
                model=model,
                perms=perms,
                settings=self.settings,
                transcript=transcript,
                log_dir=self.attempt_dir(request) / f"attempt-{request.attempt}.bash",
                client=anthropic.AsyncAnthropic(
                    api_key=api_key,
                    max_retries=0,  # Temporal owns retries (three attempts, retry-after honoured)
                    timeout=self.settings.request_timeout,
                ),
                where=where,
            )
            async with _heartbeating(loop.heartbeat_details):
                outcome = await loop.run()
        finally:
            await asyncio.shield(asyncio.to_thread(remove_private_tmp, tmp))
        return _result(
            request,
            spec,
            model,
            outcome,
            transcript,
            time.monotonic() - started,
            cost=self.settings.cost(model, outcome.usage),
        )

    def _bash_environment(
        self, request: SpecialistRequest, cwd: Path, where: str
    ) -> tuple[dict[str, str], Sandbox]:
        """What the bash tool's commands run with: the plan's prepared environment, env and
        env_from without the worker's secrets, in the plan's jail."""
        bash_env = environment_for(where, request.environment)
        bash_env = {k: v for k, v in bash_env.items() if k not in self.settings.secret_env}
        return bash_env, jail_for(where, cwd, request.environment, bash_env, request.context_paths)


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


class _AgentLoop:
    def __init__(
        self,
        *,
        system: str,
        bash_env: dict[str, str],
        sandbox: Sandbox,
        slot: Path,
        request: SpecialistRequest,
        spec: Specialist,
        model: str,
        perms: ToolPermissions,
        settings: ClaudeSettings,
        transcript: Transcript,
        log_dir: Path,
        client: anthropic.AsyncAnthropic,
        where: str,
    ) -> None:
        self.request = request
        self.model = model
        self.settings = settings
        self.transcript = transcript
        self.client = client
        self.where = where
        self.max_turns = request.max_turns or spec.max_turns or DEFAULT_MAX_TURNS
        root = Path(request.cwd)
        secret_names = [*settings.secret_env]
        self.editor = EditorTool(root, allow_write=perms.write, tools=perms.declared)
        self.handlers: dict[str, Callable[[object], Awaitable[ToolResult]]] = {}
        if perms.view or perms.write:
            self.handlers["str_replace_based_edit_tool"] = self.editor
        if perms.bash:
            self.handlers["bash"] = BashTool(
                root,
                env=bash_env,
                timeout_s=settings.bash_timeout,
                output_limit=settings.tool_output_chars,
                log_dir=log_dir,
                secret_names=secret_names,
                sandbox=sandbox,
                slot=slot,
            )
        definitions = tool_definitions(perms)
        if any(d.get("name") == "search" for d in definitions):
            self.handlers["search"] = SearchTool(root)
        self.tools = [*definitions, FINISH_TOOL]
        self.system = system
        self.first_message: dict[str, Any] = {
            "role": "user",
            "content": [
                {
                    "type": "text",
                    "text": f"Start on task {request.task_id}: {request.task_title}. "
                    "Call `finish` when you are done.",
                }
            ],
        }
        self.turn = 0
        self.usage = Usage()

    def heartbeat_details(self) -> dict[str, Any]:
        """Where a resume would start, and what was spent: a workflow whose activity died
        for good still counts the money (it reads the last heartbeat)."""
        return {"transcript": str(self.transcript.path), "turn": self.turn, **self.spend()}

    def spend(self) -> dict[str, Any]:
        """The usage so far, as `coordinator.claude.AttemptSpend` reads it."""
        return AttemptSpend(
            tokens_in=self.usage.input_tokens
            + self.usage.cache_creation_input_tokens
            + self.usage.cache_read_input_tokens,
            tokens_out=self.usage.output_tokens,
            cost_usd=self.settings.cost(self.model, self.usage),
        ).model_dump()

    async def run(self) -> LoopOutcome:
        self.resumed_from = 0
        self.calls = 0
        self.recent: list[tuple[str, str]] = []
        self.last_text = ""
        pending = None
        if activity.info().attempt > 1 and self.transcript.path.exists():
            state = self.transcript.resume(self.first_message, keep_calls=STUCK_REPEATS)
            if state.ended is not None:  # the loop had ended; only its result was lost
                return self._stored_outcome(state.ended, state)
            messages, self.turn, self.usage = state.messages, state.turns, state.usage
            self.recent = state.recent_calls
            self.calls = state.model_calls
            self.system = state.system or self.system  # the same prompt: the cache still hits
            self.resumed_from = self.turn
            pending = state.pending
            self.transcript.write(
                "resume", activity_attempt=activity.info().attempt, turn=self.turn
            )
            activity.logger.info("%s: resuming the transcript at turn %d", self.where, self.turn)
        else:
            self.transcript.start_fresh()
            self.transcript.write(
                "start",
                model=self.model,
                task_id=self.request.task_id,
                attempt=self.request.attempt,
                system=self.system,
                tools=self.tools,
                first_message=self.first_message,
            )
            messages = [self.first_message]

        if pending is not None:
            # The worker died while this turn's tools ran: keep what finished, and tell the
            # model which call was interrupted rather than ask the turn again (and run the
            # finished tools twice).
            ended = await self._handle(
                pending.content, pending.stop_reason, messages, done=pending.done, resumed=True
            )
            if ended is not None:
                return ended
        while True:
            if over := self._over_budget():
                return self._outcome("budget", over)
            if self.turn >= self.max_turns:
                return self._outcome(
                    "max_turns", f"stopped after {self.max_turns} turns without finishing"
                )
            message = await self._call_model(messages)
            self.calls += 1
            self.usage = self.usage + _usage(message)
            content = [
                block.model_dump(mode="json", exclude_none=True) for block in message.content
            ]
            self.transcript.write(
                "response",
                turn=self.turn + 1,
                content=content,
                stop_reason=message.stop_reason,
                usage=_usage(message).model_dump(),
                message_id=message.id,
            )
            ended = await self._handle(
                content, message.stop_reason, messages, done={}, resumed=False
            )
            if ended is not None:
                return ended

    def _outcome(self, reason: StopReason, summary: str, **extra: Any) -> LoopOutcome:
        detail = extra.get("detail", "")
        finish = extra.get("finish")
        self.transcript.write(
            "end",
            stop_reason=reason,
            summary=summary,
            detail=detail,
            finish=finish.model_dump() if finish is not None else None,
            turn=self.turn,
        )
        return LoopOutcome(
            stop_reason=reason,
            summary=summary,
            turns=self.turn,
            usage=self.usage,
            model_calls=self.calls,
            resumed_from_turn=self.resumed_from,
            **extra,
        )

    def _stored_outcome(self, end: dict[str, Any], state: Resumed) -> LoopOutcome:
        finish = end.get("finish")
        return LoopOutcome(
            stop_reason=end["stop_reason"],
            summary=end.get("summary", ""),
            detail=end.get("detail", ""),
            finish=FinishReport.model_validate(finish) if finish else None,
            turns=end.get("turn", state.turns),
            usage=state.usage,
            model_calls=state.model_calls,
            resumed_from_turn=end.get("turn", state.turns),
        )

    async def _handle(
        self,
        content: list[dict[str, Any]],
        stop_reason: str | None,
        messages: list[dict[str, Any]],
        *,
        done: dict[str, dict[str, Any]],
        resumed: bool,
    ) -> LoopOutcome | None:
        """Act on one response: run its tools (those not already `done`) and append the turn
        to `messages`. Returns the outcome when the attempt ends here."""
        texts = [b["text"] for b in content if b.get("type") == "text" and b.get("text")]
        self.last_text = texts[-1] if texts else self.last_text
        tool_uses = [b for b in content if b.get("type") == "tool_use"]
        if not tool_uses:
            self.turn += 1
            if stop_reason == "max_tokens":
                # Cut off mid-answer: let it go on rather than judge half a reply.
                messages += [
                    {"role": "assistant", "content": content},
                    {"role": "user", "content": [{"type": "text", "text": _CUT_OFF}]},
                ]
                self.transcript.write(
                    "tool_results", turn=self.turn, content=messages[-1]["content"], calls=[]
                )
                return None
            if stop_reason == "refusal":
                return self._outcome("blocked", _clip(f"the model refused: {self.last_text}"))
            # end_turn without a tool call: done, and the task's gates judge the work.
            return self._outcome("end_turn", _clip(self.last_text or "done (no summary given)"))
        results: list[dict[str, Any]] = []
        finish: FinishReport | None = None
        turn_calls: list[tuple[str, str]] = []
        for block in tool_uses:
            if finish is not None:
                # Nothing runs after `finish`: the work is what it was when it said done.
                result = ToolResult(content="Not run: `finish` came first.", is_error=True)
            elif block["id"] in done:
                result = ToolResult.model_validate(done[block["id"]])
            elif resumed:  # it may have run, partly or fully, before the worker died
                result = ToolResult(content=_INTERRUPTED, is_error=True)
            elif stop_reason == "max_tokens" and block is tool_uses[-1]:
                result = ToolResult(content=_CUT_OFF_CALL, is_error=True)
            else:
                result, report = await self._run_tool(block)
                finish = finish or report
            self.transcript.write(
                "tool_done", turn=self.turn + 1, tool_use_id=block["id"], **result.model_dump()
            )
            results.append(
                {
                    "type": "tool_result",
                    "tool_use_id": block["id"],
                    "content": result.content,
                    **({"is_error": True} if result.is_error else {}),
                }
            )
            outcome_key = hashlib.sha256(result.content.encode()).hexdigest()[:16]
            turn_calls.append((_signature(block), outcome_key))
        if finish is None and resumed:
            # A `finish` the model gave before the crash still ends the attempt.
            finish = next(
                (
                    _finish_of(b)
                    for b in tool_uses
                    if b.get("name") == "finish" and b["id"] in done and _finish_of(b)
                ),
                None,
            )
        messages += [
            {"role": "assistant", "content": content},
            {"role": "user", "content": results},
        ]
        self.turn += 1
        self.transcript.write("tool_results", turn=self.turn, content=results, calls=turn_calls)
        if finish is not None:
            return self._finished(finish)
        for call in turn_calls:
            self.recent = [*self.recent[-(STUCK_REPEATS - 1) :], call]
            if len(self.recent) == STUCK_REPEATS and len(set(self.recent)) == 1:
                name = call[0].split(":", 1)[0]
                return self._outcome(
                    "stuck",
                    f"stuck: the same {name} call gave the same result "
                    f"{STUCK_REPEATS} times in a row",
                    detail=f"Repeated call: {call[0][:1000]}",
                )
        return None

    def _finished(self, finish: FinishReport) -> LoopOutcome:
        outcome = self._outcome
        notes = finish.notes_for_reviewer
        if finish.findings:
            notes = "\n".join(f"- {f}" for f in finish.findings) + ("\n\n" + notes if notes else "")
        if finish.status == "blocked":
            return outcome(
                "blocked", _clip(f"blocked: {finish.summary}"), detail=notes, finish=finish
            )
        return outcome("finish", _clip(finish.summary), detail=notes, finish=finish)

    def _over_budget(self) -> str | None:
        spent = self.settings.cost(self.model, self.usage)
        limit = self.request.max_cost_usd
        if limit is not None and spent is not None and spent >= limit:
            return f"budget reached: ${spent:.2f} spent of ${limit:.2f} allowed for this attempt"
        tokens = self.request.max_tokens
        if tokens is not None and self.usage.total >= tokens:
            return f"token budget reached: {self.usage.total} of {tokens} tokens"
        return None

    def _request_messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A copy with the rolling cache breakpoint on the newest block (tools and system
        carry the other two: at most four are allowed)."""
        out = copy.deepcopy(messages)
        last = out[-1]["content"]
        if last:
            last[-1]["cache_control"] = {"type": "ephemeral"}
        return out

    async def _call_model(self, messages: list[dict[str, Any]]) -> Any:
        tools = copy.deepcopy(self.tools)
        tools[-1]["cache_control"] = {"type": "ephemeral"}
        self.transcript.write("request", turn=self.turn + 1, messages=len(messages))
        try:
            async with self.client.messages.stream(
                model=self.model,
                max_tokens=self.settings.max_output_tokens,
                system=[
                    {"type": "text", "text": self.system, "cache_control": {"type": "ephemeral"}}
                ],
                tools=tools,  # type: ignore[arg-type]
                messages=self._request_messages(messages),  # type: ignore[arg-type]
            ) as stream:
                return await stream.get_final_message()
        except anthropic.APIStatusError as err:
            raise self._api_error(err) from err
        except anthropic.APITimeoutError as err:
            self.transcript.write("error", turn=self.turn + 1, error="timeout")
            raise ApplicationError(
                f"{self.where}: the Anthropic API did not answer within "
                f"{self.settings.request_timeout:.0f} s",
                self.spend(),
                type="AnthropicTimeout",
            ) from err
        except (anthropic.APIConnectionError, httpx2.TransportError) as err:
            # A connection dropped mid-stream surfaces as the transport's own error.
            self.transcript.write("error", turn=self.turn + 1, error=f"connection: {err}")
            raise ApplicationError(
                f"{self.where}: cannot reach the Anthropic API: {err}",
                self.spend(),
                type="AnthropicConnection",
            ) from err

    def _api_error(self, err: anthropic.APIStatusError) -> ApplicationError:
        kind, message = _error_body(err)
        # An `error` event inside a stream arrives with the stream's status (200): its type
        # says what it is.
        status = err.status_code if err.status_code >= 400 else _STATUS_OF.get(kind, 500)
        self.transcript.write(
            "error", turn=self.turn + 1, status=status, type=kind, message=message
        )
        said = f"{status} {kind}: {message}" if kind else f"{status}: {message}"
        where = f"{self.where}: the Anthropic API answered {said}"
        if status in (401, 403):
            return ApplicationError(
                f"{where}. Check ANTHROPIC_API_KEY on the worker (and its permissions for "
                f"model {self.model}); retrying cannot fix it",
                self.spend(),
                type="AnthropicCredentials",
                non_retryable=True,
            )
        if status == 404:
            return ApplicationError(
                f"{where}. Model {self.model!r} may not exist or not be available to this key: "
                "check the specialist's `model` and the `claude.models` table",
                self.spend(),
                type="AnthropicNotFound",
                non_retryable=True,
            )
        if status == 413:
            return ApplicationError(
                f"{where}. The conversation is too large for one request: lower "
                "`claude.context_chars` or split the task",
                self.spend(),
                type="AnthropicRequestTooLarge",
                non_retryable=True,
            )
        if status == 400 or (400 <= status < 500 and status not in (408, 409, 429)):
            return ApplicationError(
                f"{where}. This is a bug or a limit in the request, not a passing problem",
                self.spend(),
                type="AnthropicInvalidRequest",
                non_retryable=True,
            )
        # 408, 409, 429, 5xx and 529: passing; Temporal retries, after retry-after if given.
        delay = _retry_after(err)
        return ApplicationError(
            where,
            self.spend(),
            type="AnthropicOverloaded" if status == 529 else "AnthropicUnavailable",
            next_retry_delay=timedelta(seconds=delay) if delay is not None else None,
        )

    async def _run_tool(self, block: dict[str, Any]) -> tuple[ToolResult, FinishReport | None]:
        name, tool_input = block.get("name", ""), block.get("input")
        if name == "finish":
            try:
                return ToolResult(content="Finished."), FinishReport.model_validate(tool_input)
            except ValidationError as err:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}"
                    for e in err.errors()
                )
                return ToolResult(
                    content=f"finish: invalid input ({problems})", is_error=True
                ), None
        handler = self.handlers.get(name)
        if handler is None:
            offered = ", ".join([*self.handlers, "finish"])
            return (
                ToolResult(
                    content=f"tool {name!r} is not available to this specialist (it has: "
                    f"{offered})",
                    is_error=True,
                ),
                None,
            )
        try:
            return await handler(tool_input), None
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a tool bug must not end the attempt: the model is told
            activity.logger.exception("%s: tool %s failed", self.where, name)
            return ToolResult(
                content=f"{name} failed: {type(err).__name__}: {err}", is_error=True
            ), None


_STATUS_OF = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}

_INTERRUPTED = (
    "The worker running this attempt restarted while this tool call ran: it may have run "
    "partly or fully. Check its effects (view the file, git status) before repeating it."
)
_CUT_OFF_CALL = (
    "This call was cut off at the output limit, so its input is incomplete: it was not run. "
    "Send it again in smaller parts (for a large file: create it, then insert the rest)."
)

_CUT_OFF = (
    "Your reply was cut off at the output limit. Continue, in smaller steps (for a large "
    "file: create it in parts)."
)


def _tools_note(perms: ToolPermissions) -> str:
    notes = []
    if not perms.write:
        notes.append("You may not change files: the editor is view-only for you.")
    if not perms.bash:
        notes.append("You have no shell.")
    return ("\n\n" + " ".join(notes)) if notes else ""


def _finish_of(block: dict[str, Any]) -> FinishReport | None:
    try:
        return FinishReport.model_validate(block.get("input"))
    except ValidationError:
        return None


def _signature(block: dict[str, Any]) -> str:
    return f"{block.get('name')}:{json.dumps(block.get('input'), sort_keys=True, default=str)}"


def _usage(message: Any) -> Usage:
    usage = getattr(message, "usage", None)
    if usage is None:
        return Usage()
    return Usage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_creation_input_tokens=getattr(usage, "cache_creation_input_tokens", 0) or 0,
        cache_read_input_tokens=getattr(usage, "cache_read_input_tokens", 0) or 0,
    )


def _error_body(err: anthropic.APIStatusError) -> tuple[str, str]:
    body = err.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("type", "")), str(inner.get("message", err.message))
    return "", str(err.message)


def _retry_after(err: anthropic.APIStatusError) -> float | None:
    headers = err.response.headers
    with suppress(TypeError, ValueError):
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(ms) / 1000)
        if (seconds := headers.get("retry-after")) is not None:
            return max(0.0, float(seconds))
    return None


def _clip(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1] + "…"


@asynccontextmanager
async def _heartbeating(details: Callable[[], dict[str, Any]]) -> AsyncIterator[None]:
    """Beat during model calls and tool runs; the details say where a resume would start."""

    async def beat() -> None:
        while True:
            activity.heartbeat(details())
            await asyncio.sleep(HEARTBEAT_EVERY_S)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


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
