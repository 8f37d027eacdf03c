"""What one Claude Code run cannot carry into another, or out of the worker: an earlier run's
session, the repository's own settings, tools its agent file does not grant, the API key.
Temporal's ActivityEnvironment, the real bundled Claude Code, the local Messages API."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.claude_code.activity import ClaudeCodeActivities
from tests.activities.claude_code_support import agent_file, records
from tests.activities.test_claude_code_activity import request_for
from tests.anthropic_server import MessagesAPI, reply
from tests.engine_support import make_repo

pytest.importorskip("claude_agent_sdk", reason="the claude-code extra: make install")


async def test_a_first_run_in_a_used_folder_starts_a_fresh_session(
    tmp_path: Path, api: MessagesAPI
) -> None:
    """A later gate-loop round can name the same task and attempt: its first run must not
    resume the earlier round's session."""
    lead = agent_file(tmp_path / "agents", "lead", tools="Read", body="You fix things.")
    repo = make_repo(tmp_path / "repo")
    api.script(reply("First round done."), reply("Second round done."), key="delegate")
    activities = ClaudeCodeActivities(tmp_path / "artifacts")
    first = await ActivityEnvironment().run(activities.run, request_for(lead, repo))
    second = await ActivityEnvironment().run(activities.run, request_for(lead, repo))

    assert first.ok and second.ok, second.output_tail
    _, again = api.requests_for("delegate")
    assert len(again.messages) == 1  # the task message alone, not the first round's talk
    assert second.agent is not None and second.agent.resumed_from_turn == 0
    folder = Path(second.log_path).parent
    assert [r["kind"] for r in records(folder) if r["kind"] in ("start", "resume")] == ["start"]
