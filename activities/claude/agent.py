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
from activities.claude.transcript import Transcript
from activities.process import MissingVariableError, command_env, safe_name
from coordinator.claude import (
    DEFAULT_MAX_TURNS,
    AgentAttempt,
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
        try:
            # The plan's prepared environment, env and env_from, without the worker's secrets.
            bash_env = command_env(request.environment)
        except MissingVariableError as err:
            raise ApplicationError(
                f"{where}: {err}", type="MissingVariable", non_retryable=True
            ) from err
        bash_env = {k: v for k, v in bash_env.items() if k not in self.settings.secret_env}
        loop = _AgentLoop(
            system=system,
            bash_env=bash_env,
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
        return _result(
            request,
            spec,
            model,
            outcome,
            transcript,
            time.monotonic() - started,
            cost=self.settings.cost(model, outcome.usage),
        )


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
        return {"transcript": str(self.transcript.path), "turn": self.turn}

    async def run(self) -> LoopOutcome:
        resumed_from = 0
        calls = 0
        if activity.info().attempt > 1 and self.transcript.path.exists():
            state = self.transcript.resume(self.first_message)
            messages, self.turn, self.usage = state.messages, state.turns, state.usage
            recent = state.recent_calls
            calls = state.model_calls
            resumed_from = self.turn
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
            recent = []

        def outcome(reason: StopReason, summary: str, **extra: Any) -> LoopOutcome:
            self.transcript.write("end", stop_reason=reason, summary=summary, turn=self.turn)
            return LoopOutcome(
                stop_reason=reason,
                summary=summary,
                turns=self.turn,
                usage=self.usage,
                model_calls=calls,
                resumed_from_turn=resumed_from,
                **extra,
            )

        last_text = ""
        while True:
            if over := self._over_budget():
                return outcome("budget", over)
            if self.turn >= self.max_turns:
                return outcome(
                    "max_turns", f"stopped after {self.max_turns} turns without finishing"
                )
            message = await self._call_model(messages)
            calls += 1
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
            texts = [b["text"] for b in content if b.get("type") == "text" and b.get("text")]
            last_text = texts[-1] if texts else last_text
            tool_uses = [b for b in content if b.get("type") == "tool_use"]
            if not tool_uses:
                self.turn += 1
                if message.stop_reason == "max_tokens":
                    # Cut off mid-answer: let it go on rather than judge half a reply.
                    messages += [
                        {"role": "assistant", "content": content},
                        {
                            "role": "user",
                            "content": [{"type": "text", "text": _CUT_OFF}],
                        },
                    ]
                    self.transcript.write(
                        "tool_results", turn=self.turn, content=messages[-1]["content"], calls=[]
                    )
                    continue
                if message.stop_reason == "refusal":
                    return outcome("blocked", _clip(f"the model refused: {last_text}"))
                # end_turn without a tool call: done, and the task's gates judge the work.
                return outcome("end_turn", _clip(last_text or "done (no summary given)"))
            results: list[dict[str, Any]] = []
            finish: FinishReport | None = None
            turn_calls: list[tuple[str, str]] = []
            for block in tool_uses:
                result, report = await self._run_tool(block)
                finish = finish or report
                results.append(
                    {
                        "type": "tool_result",
                        "tool_use_id": block["id"],
                        "content": result.content,
                        **({"is_error": True} if result.is_error else {}),
                    }
                )
                signature = _signature(block)
                outcome_key = hashlib.sha256(result.content.encode()).hexdigest()[:16]
                turn_calls.append((signature, outcome_key))
            messages += [
                {"role": "assistant", "content": content},
                {"role": "user", "content": results},
            ]
            self.turn += 1
            self.transcript.write("tool_results", turn=self.turn, content=results, calls=turn_calls)
            if finish is not None:
                return self._finished(finish, outcome)
            for call in turn_calls:
                recent = [*recent[-(STUCK_REPEATS - 1) :], call]
                if len(recent) == STUCK_REPEATS and len(set(recent)) == 1:
                    name = call[0].split(":", 1)[0]
                    return outcome(
                        "stuck",
                        f"stuck: the same {name} call gave the same result "
                        f"{STUCK_REPEATS} times in a row",
                        detail=f"Repeated call: {call[0][:1000]}",
                    )

    def _finished(self, finish: FinishReport, outcome: Callable[..., LoopOutcome]) -> LoopOutcome:
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
                type="AnthropicTimeout",
            ) from err
        except (anthropic.APIConnectionError, httpx2.TransportError) as err:
            # A connection dropped mid-stream surfaces as the transport's own error.
            self.transcript.write("error", turn=self.turn + 1, error=f"connection: {err}")
            raise ApplicationError(
                f"{self.where}: cannot reach the Anthropic API: {err}",
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
                type="AnthropicCredentials",
                non_retryable=True,
            )
        if status == 404:
            return ApplicationError(
                f"{where}. Model {self.model!r} may not exist or not be available to this key: "
                "check the specialist's `model` and the `claude.models` table",
                type="AnthropicNotFound",
                non_retryable=True,
            )
        if status == 413:
            return ApplicationError(
                f"{where}. The conversation is too large for one request: lower "
                "`claude.context_chars` or split the task",
                type="AnthropicRequestTooLarge",
                non_retryable=True,
            )
        if status == 400 or (400 <= status < 500 and status not in (408, 409, 429)):
            return ApplicationError(
                f"{where}. This is a bug or a limit in the request, not a passing problem",
                type="AnthropicInvalidRequest",
                non_retryable=True,
            )
        # 408, 409, 429, 5xx and 529: passing; Temporal retries, after retry-after if given.
        delay = _retry_after(err)
        return ApplicationError(
            where,
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
    if request.role == "review" and ok:
        verdict = outcome.finish.verdict if outcome.finish else None
        ok = verdict != "changes_requested"
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
