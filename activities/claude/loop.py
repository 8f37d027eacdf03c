"""The agent loop of a Claude specialist: `run` -> `step` -> `query` / `act`, until an ending.

- `run` starts the transcript (or resumes it: `resuming`), then steps until an
  `AttemptEnded` (activities/claude/endings.py) is raised, and writes the `end` record.
- `step` checks the limits (`TurnsExhausted`, `BudgetExhausted`), `query`s the model and
  `act`s on its answer.
- `query` streams one model call (long answers neither hit the non-streaming limit nor
  starve heartbeats) and records the response.
- `act` runs the answer's tools, one `tool_result` each in the next message, and ends the
  attempt on `finish` (`Submitted`), a plain `end_turn`, a refusal, or a stuck loop (the same
  call with the same result three times in a row).

No Temporal here: the activity shell (activities/claude/agent.py) says whether this is a
retried attempt (`resuming`), gives its logger and heartbeats `heartbeat_details`, so the
loop runs in a plain test against tests/anthropic_server.py. Durability: every turn is in the
transcript before the next begins; a resumed attempt continues from the last complete turn and
never runs a tool again. Errors that retrying can fix are raised as `ApplicationError` with
the spend so far as details (the workflow counts the money of failed attempts too).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx2
from temporalio.exceptions import ApplicationError

from activities.claude.api_errors import api_error, api_status
from activities.claude.endings import (
    AnsweredWithoutTools,
    AttemptEnded,
    BudgetExhausted,
    Refused,
    Stuck,
    Submitted,
    TurnsExhausted,
)
from activities.claude.toolbox import (
    BashSetup,
    finish_call,
    finish_of,
    signature,
    tool_result,
    tools_for,
    usage_of,
)
from activities.claude.tools import (
    ToolPermissions,
    ToolResult,
)
from activities.claude.transcript import PendingTurn, Resumed, Transcript
from coordinator.claude import (
    DEFAULT_MAX_TURNS,
    AttemptSpend,
    ClaudeSettings,
    FinishReport,
    StopReason,
    Usage,
)
from coordinator.specialists import Specialist
from coordinator.work import SpecialistRequest

STUCK_REPEATS = 3

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


@dataclass
class _Turn:
    """What acting on one answer produced: its tool results, the calls for the stuck
    detector, and a `finish` the model gave."""

    results: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    finish: FinishReport | None = None


class AgentLoop:
    def __init__(
        self,
        *,
        system: str,
        request: SpecialistRequest,
        spec: Specialist,
        model: str,
        perms: ToolPermissions,
        settings: ClaudeSettings,
        transcript: Transcript,
        client: anthropic.AsyncAnthropic,
        bash: BashSetup,
        where: str,
        resuming: bool = False,
        activity_attempt: int = 1,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.request = request
        self.model = model
        self.settings = settings
        self.transcript = transcript
        self.client = client
        self.where = where
        self.resuming = resuming  # a retried activity: continue the transcript, if any
        self.activity_attempt = activity_attempt
        self.logger = logger or logging.getLogger(__name__)
        self.max_turns = request.max_turns or spec.max_turns or DEFAULT_MAX_TURNS
        self.handlers, self.tools = tools_for(perms, Path(request.cwd), settings, bash)
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
        self.messages: list[dict[str, Any]] = []
        self.turn = 0
        self.usage = Usage()
        self.calls = 0
        self.resumed_from = 0
        self.recent: list[tuple[str, str]] = []
        self.last_text = ""

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

    # --- run, step, query, act ---------------------------------------------------------------

    async def run(self) -> LoopOutcome:
        state = self._resume() if self.resuming and self.transcript.path.exists() else None
        if state is not None and state.ended is not None:
            # The loop had ended; only its result was lost.
            return self._stored_outcome(state.ended, state)
        if state is None:
            self._start()
        try:
            if state is not None and state.pending is not None:
                await self._finish_pending(state.pending)
            while True:
                await self.step()
        except AttemptEnded as ended:
            return self._ended(ended)

    async def step(self) -> None:
        """One turn: the limits, one model call, its tools."""
        self._check_limits()
        content, stop_reason = await self.query()
        await self.act(content, stop_reason)

    async def query(self) -> tuple[list[dict[str, Any]], str | None]:
        """One model call; the response is in the transcript before any tool runs."""
        message = await self._call_model()
        self.calls += 1
        usage = usage_of(message)
        self.usage = self.usage + usage
        content = [block.model_dump(mode="json", exclude_none=True) for block in message.content]
        self.transcript.write(
            "response",
            turn=self.turn + 1,
            content=content,
            stop_reason=message.stop_reason,
            usage=usage.model_dump(),
            message_id=message.id,
        )
        return content, message.stop_reason

    async def act(
        self,
        content: list[dict[str, Any]],
        stop_reason: str | None,
        *,
        done: dict[str, dict[str, Any]] | None = None,
        resumed: bool = False,
    ) -> None:
        """Run the answer's tools (those not already `done` before a crash) and add the turn
        to the conversation. Raises an `AttemptEnded` when the attempt ends here."""
        texts = [b["text"] for b in content if b.get("type") == "text" and b.get("text")]
        self.last_text = texts[-1] if texts else self.last_text
        tool_uses = [b for b in content if b.get("type") == "tool_use"]
        if not tool_uses:
            self._answer_without_tools(content, stop_reason)
            return
        turn = await self._run_calls(tool_uses, stop_reason, done or {}, resumed=resumed)
        self.messages += [
            {"role": "assistant", "content": content},
            {"role": "user", "content": turn.results},
        ]
        self.turn += 1
        self.transcript.write(
            "tool_results", turn=self.turn, content=turn.results, calls=turn.calls
        )
        if turn.finish is not None:
            raise Submitted(turn.finish)
        self._check_stuck(turn.calls)

    # --- starting and ending -----------------------------------------------------------------

    def _start(self) -> None:
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
        self.messages = [self.first_message]

    def _resume(self) -> Resumed:
        state = self.transcript.resume(self.first_message, keep_calls=STUCK_REPEATS)
        if state.ended is not None:
            return state
        self.messages, self.turn, self.usage = state.messages, state.turns, state.usage
        self.recent = state.recent_calls
        self.calls = state.model_calls
        self.system = state.system or self.system  # the same prompt: the cache still hits
        self.resumed_from = self.turn
        self.transcript.write("resume", activity_attempt=self.activity_attempt, turn=self.turn)
        self.logger.info("%s: resuming the transcript at turn %d", self.where, self.turn)
        return state

    async def _finish_pending(self, pending: PendingTurn) -> None:
        """The worker died while this turn's tools ran: keep what finished, and tell the
        model which call was interrupted rather than ask the turn again (and run the
        finished tools twice)."""
        await self.act(pending.content, pending.stop_reason, done=pending.done, resumed=True)

    def _ended(self, ended: AttemptEnded) -> LoopOutcome:
        finish = ended.finish
        self.transcript.write(
            "end",
            stop_reason=ended.stop_reason,
            summary=ended.summary,
            detail=ended.detail,
            finish=finish.model_dump() if finish is not None else None,
            turn=self.turn,
        )
        return LoopOutcome(
            stop_reason=ended.stop_reason,
            summary=ended.summary,
            detail=ended.detail,
            finish=finish,
            turns=self.turn,
            usage=self.usage,
            model_calls=self.calls,
            resumed_from_turn=self.resumed_from,
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

    # --- the limits ----------------------------------------------------------------------------

    def _check_limits(self) -> None:
        spent = self.settings.cost(self.model, self.usage)
        limit = self.request.max_cost_usd
        if limit is not None and spent is not None and spent >= limit:
            raise BudgetExhausted(
                f"budget reached: ${spent:.2f} spent of ${limit:.2f} allowed for this attempt"
            )
        tokens = self.request.max_tokens
        if tokens is not None and self.usage.total >= tokens:
            raise BudgetExhausted(f"token budget reached: {self.usage.total} of {tokens} tokens")
        if self.turn >= self.max_turns:
            raise TurnsExhausted(self.max_turns)

    def _check_stuck(self, calls: list[tuple[str, str]]) -> None:
        for call in calls:
            self.recent = [*self.recent[-(STUCK_REPEATS - 1) :], call]
            if len(self.recent) == STUCK_REPEATS and len(set(self.recent)) == 1:
                raise Stuck(call[0], STUCK_REPEATS)

    # --- acting ------------------------------------------------------------------------------

    def _answer_without_tools(self, content: list[dict[str, Any]], stop_reason: str | None) -> None:
        self.turn += 1
        if stop_reason == "refusal":
            raise Refused(self.last_text)
        if stop_reason != "max_tokens":
            raise AnsweredWithoutTools(self.last_text)
        # Cut off mid-answer: let it go on rather than judge half a reply.
        self.messages += [
            {"role": "assistant", "content": content},
            {"role": "user", "content": [{"type": "text", "text": _CUT_OFF}]},
        ]
        self.transcript.write(
            "tool_results", turn=self.turn, content=self.messages[-1]["content"], calls=[]
        )

    async def _run_calls(
        self,
        tool_uses: list[dict[str, Any]],
        stop_reason: str | None,
        done: dict[str, dict[str, Any]],
        *,
        resumed: bool,
    ) -> _Turn:
        turn = _Turn()
        for block in tool_uses:
            if turn.finish is not None:
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
                turn.finish = turn.finish or report
            self.transcript.write(
                "tool_done", turn=self.turn + 1, tool_use_id=block["id"], **result.model_dump()
            )
            turn.results.append(tool_result(block["id"], result))
            outcome_key = hashlib.sha256(result.content.encode()).hexdigest()[:16]
            turn.calls.append((signature(block), outcome_key))
        if turn.finish is None and resumed:
            # A `finish` the model gave before the crash still ends the attempt.
            turn.finish = next(
                (
                    finish_of(b)
                    for b in tool_uses
                    if b.get("name") == "finish" and b["id"] in done and finish_of(b)
                ),
                None,
            )
        return turn

    async def _run_tool(self, block: dict[str, Any]) -> tuple[ToolResult, FinishReport | None]:
        name, tool_input = block.get("name", ""), block.get("input")
        if name == "finish":
            return finish_call(tool_input)
        handler = self.handlers.get(name)
        if handler is None:
            offered = ", ".join([*self.handlers, "finish"])
            message = f"tool {name!r} is not available to this specialist (it has: {offered})"
            return ToolResult(content=message, is_error=True), None
        try:
            return await handler(tool_input), None
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a tool bug must not end the attempt: the model is told
            self.logger.exception("%s: tool %s failed", self.where, name)
            return ToolResult(
                content=f"{name} failed: {type(err).__name__}: {err}", is_error=True
            ), None

    # --- querying ----------------------------------------------------------------------------

    def _request_messages(self) -> list[dict[str, Any]]:
        """A copy with the rolling cache breakpoint on the newest block (tools and system
        carry the other two: at most four are allowed)."""
        out = copy.deepcopy(self.messages)
        last = out[-1]["content"]
        if last:
            last[-1]["cache_control"] = {"type": "ephemeral"}
        return out

    async def _call_model(self) -> Any:
        tools = copy.deepcopy(self.tools)
        tools[-1]["cache_control"] = {"type": "ephemeral"}
        self.transcript.write("request", turn=self.turn + 1, messages=len(self.messages))
        try:
            async with self.client.messages.stream(
                model=self.model,
                max_tokens=self.settings.max_output_tokens,
                system=[
                    {"type": "text", "text": self.system, "cache_control": {"type": "ephemeral"}}
                ],
                tools=tools,  # type: ignore[arg-type]
                messages=self._request_messages(),  # type: ignore[arg-type]
            ) as stream:
                return await stream.get_final_message()
        except anthropic.APIStatusError as err:
            status, kind, message = api_status(err)
            self.transcript.write(
                "error", turn=self.turn + 1, status=status, type=kind, message=message
            )
            raise api_error(err, where=self.where, model=self.model, spend=self.spend()) from err
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
