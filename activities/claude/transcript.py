"""The transcript of one Claude attempt: a JSONL file, one line per event, appended and flushed
as the conversation goes, so that an activity retried after a crash picks the conversation up
where the last complete turn left it instead of paying for it again.

Lines: `start` (model, system prompt, tools, first message), then per turn `request` (turn,
message count), `response` (the assistant message, usage, stop reason), `tool_results` (the
user message answering it), and `error` / `end`. The API key is never written: it is not part
of any request body.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coordinator.claude import Usage


@dataclass
class PendingTurn:
    """A response whose tools had not all run when the worker died, and those that had."""

    content: list[dict[str, Any]]
    stop_reason: str | None
    done: dict[str, dict[str, Any]] = field(default_factory=dict)  # tool_use id -> result


@dataclass
class Resumed:
    """What a transcript holds: the messages of every complete turn, and the money spent."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    system: str = ""  # the system prompt the conversation started with
    pending: PendingTurn | None = None
    ended: dict[str, Any] | None = None  # the `end` record, when the loop had ended
    turns: int = 0  # complete turns (a response and, unless it ended the loop, its results)
    usage: Usage = field(default_factory=Usage)
    model_calls: int = 0
    # The (tool call, result) pairs of the last turns, for stuck detection across a resume.
    recent_calls: list[tuple[str, str]] = field(default_factory=list)


class Transcript:
    def __init__(self, path: Path) -> None:
        self.path = path

    def start_fresh(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("", encoding="utf-8")

    def write(self, kind: str, **fields: Any) -> None:
        record = {"kind": kind, "time": datetime.now(UTC).isoformat(), **fields}
        line = json.dumps(record, ensure_ascii=False, default=str)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut by a crash: everything after it is unusable
            if isinstance(record, dict):
                records.append(record)
        return records

    def resume(self, first_message: dict[str, Any], *, keep_calls: int = 3) -> Resumed:
        """Rebuild the conversation from the complete turns on disk.

        A response whose tool results were not all written (the worker died while its tools
        ran) comes back as `pending`, with the results of the tools that did finish: the
        caller answers the rest as interrupted instead of running them twice. Every response
        was paid for and is counted.
        """
        state = Resumed(messages=[first_message])
        for record in self.records():
            kind = record.get("kind")
            if kind == "start":
                state.system = str(record.get("system") or "")
            elif kind == "response":
                state.model_calls += 1
                state.usage = state.usage + Usage.model_validate(record.get("usage") or {})
                state.pending = PendingTurn(
                    content=record["content"], stop_reason=record.get("stop_reason")
                )
            elif kind == "tool_done" and state.pending is not None:
                state.pending.done[str(record.get("tool_use_id"))] = {
                    "content": record.get("content", ""),
                    "is_error": bool(record.get("is_error")),
                }
            elif kind == "tool_results" and state.pending is not None:
                state.messages.append({"role": "assistant", "content": state.pending.content})
                state.messages.append({"role": "user", "content": record["content"]})
                state.turns += 1
                for signature, result in record.get("calls", []):
                    calls = [*state.recent_calls, (signature, result)]
                    state.recent_calls = calls[-keep_calls:]
                state.pending = None
            elif kind == "end":
                state.ended = record
        return state
