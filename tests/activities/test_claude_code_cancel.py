"""A Claude Code run cancelled while its agent's tool runs (the execution cancelled): nothing of
it goes on working in the worktree, on a worker that lives on."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.running_commands import oldest_start
from tests.activities.claude_code_support import cc_task
from tests.activities.test_claude_code_engine import repo_with_agents
from tests.anthropic_server import MessagesAPI, reply, tool_use
from tests.engine_support import running_worker, start, write_plan

pytest.importorskip("claude_agent_sdk", reason="the claude-code extra: make install")


def running_with(marker: str) -> list[int]:
    """The processes whose command line holds `marker`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in command and state != "Z" and int(pid) != os.getpid():
            found.append(int(pid))
    return found


async def until(condition: Callable[[], object], timeout: float, what: str) -> None:
    for _ in range(int(timeout * 10)):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


async def test_a_cancelled_run_leaves_no_tool_running(
    client: Client, task_queue: str, tmp_path: Path, api: MessagesAPI
) -> None:
    repo_with_agents(tmp_path)
    marker = f"coord-cancel-{uuid.uuid4().hex}"
    plan = write_plan(
        tmp_path,
        {
            "agents_backend": "claude-code",
            "tasks": [cc_task("slow", "writer", "Take your time.")],
        },
    )
    api.script(
        # (Claude Code refuses a plain `sleep`.)
        reply(tool_use("Bash", {"command": f"tail -f /dev/null {marker} 2>/dev/null"})),
        reply("done"),
        key="slow",
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        await until(lambda: running_with(marker), 120, "the agent's tool running")
        await asyncio.sleep(2)
        assert running_with(marker)  # it runs on by itself
        assert oldest_start() is not None  # counted as running (activities/spare_check.py)
        await handle.cancel()
        # The worker lives on; within the activity's cancellation (a heartbeat, then the
        # SDK's close) the tool and everything of the run are gone.
        await until(lambda: not running_with(marker), 60, "the tool stopped")
        # Nor is it counted as running any more (the spare check's memory waits for that).
        await until(lambda: oldest_start() is None, 60, "the run no longer counted")
