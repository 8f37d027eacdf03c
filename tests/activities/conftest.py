"""The scripted Messages API server for the claude-code tests, with the in-process worker
pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.anthropic_server import MessagesAPI, serve_messages_api


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[MessagesAPI]:
    """The server, and the in-process worker pointed at it (read when an activity runs)."""
    with serve_messages_api() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield server
