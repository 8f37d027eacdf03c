"""One Claude Code run of a task attempt, streamed message by message.

Every message goes to the attempt's transcript (JSONL) as it arrives. The session id is
saved (in `state.json` next to the config folder, and in the heartbeat details) as soon as
Claude Code reports it; a retried activity resumes that session (`--resume`), so the tool
calls it had finished are not run again, and adds what the earlier runs spent. The
heartbeat names the last tool call, so `coord watch` and the Temporal UI show what the
agent is doing, and carries the spend so far (`coordinator.claude.AttemptSpend`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncGenerator
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from temporalio import activity

from activities.claude.transcript import Transcript
from activities.claude_code.launch import Launch
from activities.claude_code.prompt import RESUME_MESSAGE
from activities.claude_code.redact import Redactor
from activities.heartbeat import heartbeating_live
from activities.running_commands import counted, process_alive
from coordinator.claude import AttemptSpend, ClaudeSettings, Usage

HEARTBEAT_EVERY_S = 5.0
STDERR_LINES = 40
TOOL_INPUT_CHARS = 160
SYSTEM_PROMPT_NAME = "system-prompt.md"  # in the config folder, which the jail mounts
# Passed as `--settings`, which outranks every settings file.
LOCKED_SETTINGS = json.dumps({"disableAllHooks": True})


@dataclass
class SavedState:
    """What survives a killed worker: the session, and what the runs before spent."""

    session_id: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    turns: int = 0

    @staticmethod
    def load(path: Path) -> SavedState:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return SavedState()
        return SavedState(
            session_id=data.get("session_id"),
            usage=Usage.model_validate(data.get("usage") or {}),
            cost_usd=float(data.get("cost_usd") or 0.0),
            turns=int(data.get("turns") or 0),
        )

    def save(self, path: Path) -> None:
        data = {
            "session_id": self.session_id,
            "usage": self.usage.model_dump(),
            "cost_usd": self.cost_usd,
            "turns": self.turns,
        }
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data), encoding="utf-8")
        temporary.replace(path)


@dataclass
class RunEnd:
    """How a run ended: Claude Code's result (None when it gave none), or a budget stop."""

    result: dict[str, Any] | None
    last_text: str
    usage: Usage
    cost_usd: float | None
    turns: int
    session_id: str | None
    resumed: bool
    turns_before: int = 0  # what the runs before this one (a resumed session) took
    token_budget_hit: str = ""
    timed_out: bool = False  # the specialist's `timeout` ended it
    stderr: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunSpec:
    """What the run is asked to do."""

    system: str
    prompt: str
    model: str
    tools: list[str] | None  # None: Claude Code's default set
    disallowed_tools: list[str]
    max_turns: int
    agents: dict[str, dict[str, Any]]
    max_cost_usd: float | None
    max_tokens: int | None


class SessionRun:
    def __init__(
        self,
        launch: Launch,
        spec: RunSpec,
        *,
        transcript: Transcript,
        state_path: Path,
        settings: ClaudeSettings,
    ) -> None:
        self.launch = launch
        self.spec = spec
        self.transcript = transcript
        self.state_path = state_path
        self.settings = settings
        self.saved = SavedState.load(state_path)
        self.state = dataclasses.replace(self.saved)
        self.usage = Usage()  # this run's, by message
        self.seen_messages: set[str] = set()
        self.last_tool = ""
        self.last_text = ""
        self.stderr: list[str] = []
        # The key and the plan's secret-named values, wherever the agent's shell printed them.
        self.redact = Redactor.for_env(launch.env)

    def resume_from(self, details: list[Any]) -> None:
        """A session id from the last heartbeat, when the state file has none."""
        if self.state.session_id is None:
            for detail in details:
                if isinstance(detail, dict) and detail.get("session_id"):
                    self.state.session_id = str(detail["session_id"])

    def spent(self) -> tuple[Usage, float | None]:
        usage = self.saved.usage + self.usage
        cost = self.settings.cost(self.spec.model, self.usage)
        return usage, (self.saved.cost_usd + cost) if cost is not None else None

    def heartbeat_details(self) -> dict[str, Any]:
        usage, cost = self.spent()
        spend = AttemptSpend(
            tokens_in=usage.total - usage.output_tokens,
            tokens_out=usage.output_tokens,
            cost_usd=cost,
        )
        return {
            "session_id": self.state.session_id,
            "last_tool": self.last_tool,
            "transcript": str(self.transcript.path),
            **spend.model_dump(),
        }

    def options(self, resume: str | None) -> Any:
        from claude_agent_sdk import AgentDefinition, ClaudeAgentOptions

        spec = self.spec
        budget = None
        if spec.max_cost_usd is not None:
            budget = max(0.0, spec.max_cost_usd - self.saved.cost_usd)
        # From a file: an argument is limited to 128 KiB, an agent body is not.
        system_file = self.launch.config_dir / SYSTEM_PROMPT_NAME
        system_file.write_text(spec.system, encoding="utf-8")
        return ClaudeAgentOptions(
            system_prompt={"type": "file", "path": str(system_file)},
            tools=spec.tools,
            disallowed_tools=spec.disallowed_tools,
            permission_mode="bypassPermissions",
            cwd=str(self.launch.cwd),
            cli_path=str(self.launch.launcher),
            env=self.launch.env,
            model=spec.model,
            max_turns=max(1, spec.max_turns - self.saved.turns),
            max_budget_usd=budget,
            resume=resume,
            # No settings file is read: not the repository's (an agent with Write could
            # plant hooks, an `env` that sends the key elsewhere, an `apiKeyHelper`), not
            # the config folder's (writable in the jail). Hooks and MCP servers are off;
            # the repository's CLAUDE.md reaches the task message instead (prompt.py).
            setting_sources=[],
            settings=LOCKED_SETTINGS,
            strict_mcp_config=True,
            agents={name: AgentDefinition(**fields) for name, fields in spec.agents.items()}
            or None,
            stderr=self._stderr,
        )

    def _recount(self, session: str) -> None:
        """What the runs before spent, from Claude Code's own session file: the streamed
        messages carry the usage of their start only (one output token). The agent can
        write that file, so it can only raise the recorded spend, never lower it."""
        usage = session_usage(self.launch.config_dir, session)
        if usage is None:
            return
        cost = self.settings.cost(self.spec.model, usage)
        self.saved = SavedState(
            session_id=session,
            usage=larger_usage(self.saved.usage, usage),
            cost_usd=max(self.saved.cost_usd, cost or 0.0),
            turns=self.saved.turns,
        )

    def _stderr(self, line: str) -> None:
        self.stderr = [*self.stderr[-(STDERR_LINES - 1) :], self.redact.text(line.rstrip())]

    async def run(self, timeout_s: float) -> RunEnd:
        from claude_agent_sdk import ClaudeSDKError, query

        resume = self.state.session_id
        if resume:
            self._recount(resume)
            self.transcript.write("resume", session_id=resume, attempt=activity.info().attempt)
            prompt = RESUME_MESSAGE
        else:
            self.transcript.start_fresh()
            start = {
                "model": self.spec.model,
                "system": self.spec.system,
                "prompt": self.spec.prompt,
                "tools": self.spec.tools,
                "agents": sorted(self.spec.agents),
            }
            self.transcript.write("start", **self.redact.record(start))
            prompt = self.spec.prompt
        result: dict[str, Any] | None = None
        budget_hit = ""
        try:
            # Beat while Claude Code works, also when it sends nothing for a while (a long tool).
            async with (
                heartbeating_live(lambda: [self.heartbeat_details()], every=HEARTBEAT_EVERY_S),
                # Claude Code and its tools (activities/running_commands.py).
                counted(alive_after_cancel=lambda: process_alive(self.launch.pid_file)),
                asyncio.timeout(timeout_s),
                aclosing(self._messages(query, prompt, resume)) as messages,
            ):
                # Leaving early (the token budget, the timeout) closes it: Claude Code stops.
                async for message in messages:
                    result = self._take(message) or result
                    if result is None and (budget_hit := self._over_tokens()):
                        break
        except TimeoutError:
            end = self._end(None, "", resumed=resume is not None)
            end.timed_out = True
            return end
        except ClaudeSDKError:
            if result is None:
                raise  # the caller maps it (the process died, or never started)
        return self._end(result, budget_hit, resumed=resume is not None)

    def _messages(self, query: Any, prompt: str, resume: str | None) -> AsyncGenerator[Any, None]:
        """The SDK's stream (an async generator, though typed as an iterator)."""
        return cast(AsyncGenerator[Any, None], query(prompt=prompt, options=self.options(resume)))

    def _take(self, message: Any) -> dict[str, Any] | None:
        kind = type(message).__name__
        record = self.redact.record(
            dataclasses.asdict(message)
            if dataclasses.is_dataclass(message) and not isinstance(message, type)
            else {}
        )
        self.transcript.write(kind, **{k: v for k, v in record.items() if k != "kind"})
        if kind == "SystemMessage" and message.subtype == "init":
            session = message.data.get("session_id")
            if session and session != self.state.session_id:
                self.state.session_id = str(session)
                self._save()
            activity.heartbeat(self.heartbeat_details())
        elif kind == "AssistantMessage":
            self._assistant(message)
        elif kind == "ResultMessage":
            return record
        return None

    def _assistant(self, message: Any) -> None:
        key = message.message_id or message.uuid or ""
        if message.usage and key not in self.seen_messages and message.model != "<synthetic>":
            self.seen_messages.add(key)
            self.usage = self.usage + _usage(message.usage)
            self.state.turns += 1
        for block in message.content:
            if type(block).__name__ == "ToolUseBlock":
                said = json.dumps(block.input, ensure_ascii=False, default=str)
                self.last_tool = self.redact.text(f"{block.name} {said}")[:TOOL_INPUT_CHARS]
            elif type(block).__name__ == "TextBlock" and block.text.strip():
                self.last_text = self.redact.text(block.text)
        self._save()
        activity.heartbeat(self.heartbeat_details())

    def _save(self) -> None:
        usage, cost = self.spent()
        saved = SavedState(self.state.session_id, usage, cost or 0.0, self.state.turns)
        saved.save(self.state_path)

    def _over_tokens(self) -> str:
        usage, _ = self.spent()
        limit = self.spec.max_tokens
        if limit is not None and usage.total >= limit:
            return f"token budget reached: {usage.total} of {limit} tokens"
        return ""

    def _end(self, result: dict[str, Any] | None, budget_hit: str, *, resumed: bool) -> RunEnd:
        usage, cost = self.spent()
        turns = self.state.turns
        if result is not None:
            # Claude Code's own count of this run replaces the one made from the messages.
            if isinstance(result.get("usage"), dict):
                usage = self.saved.usage + _usage(result["usage"])
            if result.get("total_cost_usd") is not None:
                cost = self.saved.cost_usd + float(result["total_cost_usd"])
            turns = self.saved.turns + int(result.get("num_turns") or 0)
        end = RunEnd(
            result=result,
            last_text=self.last_text,
            usage=usage,
            cost_usd=cost,
            turns=turns,
            session_id=self.state.session_id,
            resumed=resumed,
            turns_before=self.saved.turns,
            token_budget_hit=budget_hit,
            stderr=list(self.stderr),
        )
        self.transcript.write(
            "end",
            subtype=(result or {}).get("subtype"),
            budget=budget_hit,
            usage=usage.model_dump(),
            cost_usd=cost,
            turns=turns,
        )
        return end


def session_usage(config_dir: Path, session: str) -> Usage | None:
    """The usage of every model call a session recorded (once per message), or None when
    its file is not there."""
    files = list((config_dir / "projects").glob(f"*/{session}.jsonl"))
    if not files:
        return None
    counted: dict[str, Usage] = {}
    for line in files[0].read_text(encoding="utf-8", errors="replace").splitlines():
        with suppress(ValueError):
            entry = json.loads(line)
            message = entry.get("message") if isinstance(entry, dict) else None
            if entry.get("type") != "assistant" or not isinstance(message, dict):
                continue
            if message.get("model") == "<synthetic>" or not isinstance(message.get("usage"), dict):
                continue
            counted[str(message.get("id"))] = _usage(message["usage"])
    return sum(counted.values(), Usage())


def larger_usage(recorded: Usage, counted: Usage) -> Usage:
    """The larger of the two, field by field."""
    return Usage(
        **{
            name: max(getattr(recorded, name), getattr(counted, name))
            for name in Usage.model_fields
        }
    )


def _usage(raw: dict[str, Any]) -> Usage:
    def count(name: str) -> int:
        value = raw.get(name)
        return int(value) if isinstance(value, int | float) else 0

    return Usage(
        input_tokens=count("input_tokens"),
        output_tokens=count("output_tokens"),
        cache_creation_input_tokens=count("cache_creation_input_tokens"),
        cache_read_input_tokens=count("cache_read_input_tokens"),
    )
