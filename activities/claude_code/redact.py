"""Secret values kept out of what a Claude Code run leaves behind: its transcript, the last
tool call in heartbeats and failure details, the summary. The agent's own shell can print
any variable it sees (the API key too, unless Claude Code scrubs it from its subprocesses),
and tool output and input land in these places; as `activities/claude/tools/bash.py` does
for the `claude` backend, every value of a secret-named variable is replaced by
"[redacted]"."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from activities.process_env import is_secret_name

REDACTED = "[redacted]"
SHORTEST = 8  # shorter values would redact ordinary words


@dataclass(frozen=True)
class Redactor:
    values: tuple[str, ...]  # longest first, so a secret containing another goes whole

    @staticmethod
    def for_env(env: Mapping[str, str]) -> Redactor:
        """The secret-named values of the run's environment and of the worker's."""
        found = {
            value
            for name, value in {**os.environ, **env}.items()
            if is_secret_name(name) and len(value) >= SHORTEST
        }
        return Redactor(tuple(sorted(found, key=len, reverse=True)))

    def text(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, REDACTED)
        return text

    def record(self, record: dict[str, Any]) -> dict[str, Any]:
        """A record with every secret value replaced, in nested strings too."""
        redacted: dict[str, Any] = self._value(record)
        return redacted

    def _value(self, value: Any) -> Any:
        if not self.values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self._value(key): self._value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._value(item) for item in value]
        return value
