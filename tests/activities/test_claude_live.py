"""A smoke test against the real Anthropic API, skipped unless ANTHROPIC_API_KEY is set (and
no ANTHROPIC_BASE_URL points elsewhere). It spends a few cents with the cheapest model."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.claude.agent import ClaudeSpecialistActivities
from coordinator.claude import ClaudeSettings
from coordinator.work import SpecialistRequest, SpecialistResult

pytestmark = pytest.mark.skipif(
    not os.environ.get("ANTHROPIC_API_KEY") or bool(os.environ.get("ANTHROPIC_BASE_URL")),
    reason="live Anthropic API test: set ANTHROPIC_API_KEY to run it",
)


async def test_a_real_model_edits_a_file_and_finishes(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "hello.txt").write_text("hello\n")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    agent = tmp_path / "agent.md"
    agent.write_text(
        "---\nname: editor\ndescription: edits files\ntools: Read, Edit, Write\n"
        "model: haiku\n---\nYou edit files exactly as asked, then call finish.\n"
    )
    request = SpecialistRequest(
        execution_id="live",
        task_id="live-1",
        task_title="Replace hello with goodbye in hello.txt",
        task_prompt="hello.txt must contain exactly 'goodbye' and a newline.",
        specialist="editor",
        backend="claude",
        timeout_s=300,
        cwd=str(repo),
        attempt=1,
        specialist_source=str(agent),
        max_turns=8,
        max_cost_usd=0.50,
    )
    acts = ClaudeSpecialistActivities(tmp_path / "artifacts", ClaudeSettings())
    result: SpecialistResult = await ActivityEnvironment().run(acts.run, request)
    assert result.ok, result.summary
    assert (repo / "hello.txt").read_text().strip() == "goodbye"
    assert result.agent is not None and result.agent.usage.output_tokens > 0
    assert result.cost_usd is not None and result.cost_usd < 0.50
