"""The claude-code activity alone (Temporal's ActivityEnvironment, the real bundled Claude
Code, the local Messages API), and what a worker or `coord validate` says is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.claude_code.activity import ClaudeCodeActivities
from activities.claude_code.sdk import INSTALL_HINT
from coordinator.claude_code import read_verdict, requirements_problem
from coordinator.work import SpecialistRequest
from tests.activities.claude_code_support import agent_file, tool_names
from tests.anthropic_server import MessagesAPI, Turn, reply, tool_use
from tests.conftest import EXAMPLES, ROOT
from tests.engine_support import make_repo

pytest.importorskip("claude_agent_sdk", reason="the claude-code extra: make install")


def request_for(source: Path, cwd: Path, **fields: object) -> SpecialistRequest:
    return SpecialistRequest.model_validate(
        {
            "execution_id": "x-1",
            "task_id": "delegate",
            "task_title": "Delegate the reading",
            "task_prompt": "Ask a helper.",
            "specialist": "lead",
            "backend": "claude-code",
            "timeout_s": 300,
            "cwd": str(cwd),
            "attempt": 1,
            "specialist_source": str(source),
            **fields,
        }
    )


async def test_task_gets_the_plans_other_agent_files_as_claude_code_agents(
    tmp_path: Path, api: MessagesAPI
) -> None:
    agents = tmp_path / "agents"
    lead = agent_file(agents, "lead", tools="Task, Read", body="You lead.")
    agent_file(agents, "helper-one", tools="Read", body="You help with one thing.")
    agent_file(agents, "helper-two", tools=None, body="You help with another.")
    repo = make_repo(tmp_path / "repo")
    api.script(reply("Nothing to delegate after all."), key="delegate")

    activities = ClaudeCodeActivities(tmp_path / "artifacts")
    result = await ActivityEnvironment().run(activities.run, request_for(lead, repo))

    assert result.ok, result.output_tail
    [request] = api.requests_for("delegate")
    # `Task` is Claude Code's sub-agent tool (it calls it Agent now); the other files are
    # its agents; the lead itself is not.
    assert tool_names(request) == ["Agent", "Read"]
    offered = str(request.body)
    assert "helper-one" in offered
    # Only agents within the lead's own tools: not one with the default set (helper-two),
    # not the implementer (Write, Bash), which would make a reader a writer.
    assert "helper-two" not in offered and "implementer" not in offered
    assert "help with one thing" not in request.system_text  # their prompts stay theirs
    assert result.agent is not None and result.agent.stop_reason == "end_turn"
    assert result.summary == "Nothing to delegate after all."


async def test_a_reviewers_verdict_is_read_from_its_last_message(
    tmp_path: Path, api: MessagesAPI
) -> None:
    reviewer = agent_file(tmp_path / "agents", "lead", tools="Read, Grep", body="You review.")
    repo = make_repo(tmp_path / "repo")
    api.script(
        reply("- app.py:3: the name is misspelled\nVERDICT: changes_requested"), key="delegate"
    )
    activities = ClaudeCodeActivities(tmp_path / "artifacts")
    result = await ActivityEnvironment().run(
        activities.run, request_for(reviewer, repo, role="review")
    )
    assert not result.ok
    assert result.agent is not None and result.agent.finish is not None
    assert result.agent.finish.verdict == "changes_requested"
    assert result.agent.finish.findings == ["app.py:3: the name is misspelled"]


async def test_heartbeats_carry_the_session_the_last_tool_call_and_the_spend(
    tmp_path: Path, api: MessagesAPI
) -> None:
    lead = agent_file(tmp_path / "agents", "lead", tools="Bash", body="You run things.")
    repo = make_repo(tmp_path / "repo")
    api.script(
        reply(tool_use("Bash", {"command": "echo hi > hi.txt"})),
        reply("Ran it."),
        key="delegate",
    )
    beats: list[dict[str, object]] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.extend(d for d in details if isinstance(d, dict))
    activities = ClaudeCodeActivities(tmp_path / "artifacts")
    result = await env.run(activities.run, request_for(lead, repo))

    assert result.ok and (repo / "hi.txt").read_text() == "hi\n"
    sessions = {b["session_id"] for b in beats if b.get("session_id")}
    assert len(sessions) == 1
    assert any(b.get("last_tool") == 'Bash {"command": "echo hi > hi.txt"}' for b in beats)
    assert any(int(str(b.get("tokens_in") or 0)) > 0 for b in beats)  # what the workflow counts


async def test_the_specialists_timeout_stops_claude_code_as_a_failed_attempt(
    tmp_path: Path, api: MessagesAPI
) -> None:
    lead = agent_file(tmp_path / "agents", "lead", tools="Bash", body="You run things.")
    repo = make_repo(tmp_path / "repo")
    api.script(Turn(reply("Too late."), delay=20), key="delegate")
    activities = ClaudeCodeActivities(tmp_path / "artifacts")
    result = await ActivityEnvironment().run(activities.run, request_for(lead, repo, timeout_s=3))
    assert not result.ok and result.timed_out
    assert result.summary == "timed out after 3 s"


def test_verdicts_and_findings() -> None:
    assert read_verdict("Looks right.\nVERDICT: approve") == ("approve", [])
    assert read_verdict("**Verdict:** changes requested\n- a.py:1: x") == (
        "changes_requested",
        ["a.py:1: x"],
    )
    assert read_verdict("I think it is fine.") == (None, [])


def test_a_worker_without_the_extra_or_the_key_is_told_what_to_do_in_one_line() -> None:
    callers = ["writer (task hello)"]
    both = requirements_problem(
        callers, sdk_installed=False, key_set=False, install_hint=INSTALL_HINT, place="the worker"
    )
    assert both is not None and "\n" not in both
    assert "pip install 'coord[claude-code]'" in both and "ANTHROPIC_API_KEY" in both
    assert "writer (task hello)" in both
    assert (
        requirements_problem(
            callers, sdk_installed=True, key_set=True, install_hint=INSTALL_HINT, place="x"
        )
        is None
    )
    assert (
        requirements_problem(
            [], sdk_installed=False, key_set=False, install_hint=INSTALL_HINT, place="x"
        )
        is None
    )


def test_coord_validate_says_the_key_is_missing_here() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "validate", str(EXAMPLES / "claude-code-service")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stderr.splitlines() if "Claude Code specialists" in line]
    assert "ANTHROPIC_API_KEY" in line and "python-developer (task top-words)" in line
