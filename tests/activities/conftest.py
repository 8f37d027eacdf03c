"""The scripted Messages API server for the claude-code tests, with the in-process worker
pointed at it; the scratch execution of the worktree tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.activities.worktree_support import Execution, scratch_execution
from tests.anthropic_server import MessagesAPI, serve_messages_api


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[MessagesAPI]:
    """The server, and the in-process worker pointed at it (read when an activity runs)."""
    with serve_messages_api() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield server


@pytest.fixture
async def ex(tmp_path: Path) -> Execution:
    """A scratch execution for the worktree activities: a repository and its clone."""
    return await scratch_execution(tmp_path)
