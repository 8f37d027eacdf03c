"""A worker killed while Claude Code works: the retried activity resumes the same session on
the next worker, the resumed request carries the earlier tool results, and no tool runs
twice. `coord worker` processes, the real bundled Claude Code, the local Messages API."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from temporalio.client import Client

from tests.activities.claude_code_support import (
    agent_file,
    cc_task,
    records,
    run_folder,
    sessions,
    user_text,
)
from tests.anthropic_server import MessagesAPI, RecordedRequest, Turn, reply, tool_use
from tests.engine_support import git, make_repo, start, write_plan
from tests.workflows.test_claude_engine import branch_file, finished
from tests.workflows.test_durability import (
    AFTER_A_CRASH,
    QUICK,
    until,
    worker_env,
    worker_processes,
)

pytest.importorskip("claude_agent_sdk", reason="the claude-code extra: make install")


def recorded_result(folder: Path, tool_use_id: str) -> bool:
    """Claude Code's session file holds the tool's result (it writes it a moment after)."""
    return any(
        tool_use_id in path.read_text() and "tool_result" in path.read_text()
        for path in sessions(folder)
    )


async def test_a_worker_killed_mid_session_resumes_the_same_session(
    client: Client, server_address: str, task_queue: str, tmp_path: Path, api: MessagesAPI
) -> None:
    repo = make_repo(tmp_path / "repo")
    agent_file(repo / ".claude" / "agents", "writer", tools="Write, Bash", body="You write.")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "agent")
    plan = write_plan(
        tmp_path,
        {
            "agents_backend": "claude-code",
            "tasks": [
                cc_task(
                    "durable",
                    "writer",
                    "Write b.txt.",
                    gates=[{"name": "b", "run": "test -f b.txt"}],
                )
            ],
        },
    )
    reached, crashed = threading.Event(), threading.Event()

    def hold_until_the_crash(request: RecordedRequest) -> None:
        if not crashed.is_set():
            reached.set()
            crashed.wait(timeout=AFTER_A_CRASH)

    once = tool_use("Bash", {"command": "echo once >> ran.txt"})
    api.script(
        reply(once),
        # Never answered: the worker (and with it Claude Code) dies while it waits.
        Turn(reply("too late"), before=hold_until_the_crash),
        # The resumed session: Claude Code adds a placeholder answer to the cut-off turn,
        # so the next scripted turn is the third.
        reply(tool_use("Write", {"file_path": "b.txt", "content": "b\n"})),
        reply("b.txt written."),
        key="durable",
    )
    env = {**worker_env(server_address, task_queue, tmp_path), **api.env()}
    with worker_processes(env, tmp_path) as workers:
        try:
            first = workers.start()
            handle = await start(client, task_queue, plan)
            folder = run_folder(tmp_path, handle.id, "durable")
            await until(reached.is_set, QUICK, "the second model call", workers)
            await until(
                lambda: recorded_result(folder, once["id"]), QUICK, "the saved result", workers
            )
            workers.kill(first)
            crashed.set()
            workers.start()
            report = await finished(handle, api, AFTER_A_CRASH + 60)
        finally:
            crashed.set()

    assert report.status == "Complete", f"{report.to_markdown()}\n{workers.output()}"
    requests = api.requests_for("durable")
    assert [r.turn for r in requests] == [0, 1, 2, 3], [(r.turn, r.status) for r in requests]
    # The resumed request carries the earlier tool call and its result, and says why.
    resumed = requests[2]
    calls = [
        block["id"]
        for message in resumed.messages
        if message["role"] == "assistant" and isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_use"
    ]
    assert calls == [once["id"]]
    assert "Bash completed with no output" in user_text(resumed)
    assert "worker running this session restarted" in user_text(resumed)
    # No tool ran twice; the work after the crash landed.
    assert branch_file(report, "ran.txt") == "once"
    assert branch_file(report, "b.txt") == "b"
    [task] = report.tasks
    assert (task.status, task.attempts) == ("passed", 1)
    # The same session, resumed: one session file, one start and one resume in the transcript.
    state = json.loads((folder / "state.json").read_text())
    [session] = sessions(folder)
    assert session.stem == state["session_id"]
    kinds = [r["kind"] for r in records(folder)]
    assert kinds.count("start") == 1
    [resume] = [r for r in records(folder) if r["kind"] == "resume"]
    assert resume["session_id"] == state["session_id"] and resume["attempt"] == 2
    # Both runs are paid for (the first one counted from Claude Code's session file): three
    # answered calls of 150 tokens; the one the crash cut off was never answered.
    assert task.tokens == 3 * 150
