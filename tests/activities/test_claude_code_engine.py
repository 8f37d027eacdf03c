"""The claude-code backend end to end: real executions on Temporal whose specialists are
Claude Code agent files, run by the real Claude Code binary bundled in claude-agent-sdk,
against the local Messages API server (tests/anthropic_server.py). Conversations are keyed by
the task id, which the system prompt names."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from temporalio.client import Client

from coordinator.escalation import Action, Resolution
from tests.activities.claude_code_support import (
    MODEL,
    agent_file,
    cc_task,
    records,
    run_folder,
    tool_names,
    user_text,
)
from tests.anthropic_server import MessagesAPI, RecordedRequest, Reply, Turn, reply, tool_use
from tests.engine_support import (
    branch_log,
    git,
    make_repo,
    pending_escalation,
    running_worker,
    start,
    write_plan,
)
from tests.workflows.test_claude_engine import branch_file, finished

pytest.importorskip("claude_agent_sdk", reason="the claude-code extra: make install")

WRITER_BODY = "You are the writer. You write exactly the files the task asks for."


def repo_with_agents(tmp_path: Path, **files: str) -> Path:
    """A repository whose `.claude/agents/` holds the team's own agent files, unchanged."""
    repo = make_repo(tmp_path / "repo", {"README.md": "# demo\n", **files})
    agents = repo / ".claude" / "agents"
    agent_file(agents, "writer", tools="Write, Bash", body=WRITER_BODY, model="sonnet")
    agent_file(agents, "reader", tools="Read, Grep, Glob", body="You read and report.")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "agents")
    return repo


async def test_unchanged_agent_files_run_in_claude_code_to_complete(
    client: Client, task_queue: str, tmp_path: Path, api: MessagesAPI
) -> None:
    """Write + Bash through the real Claude Code: the file lands in the task's commit, the
    model was offered exactly the agent file's tools, and the report has Claude Code's
    tokens and cost."""
    repo = repo_with_agents(tmp_path)
    plan = write_plan(
        tmp_path,
        {
            "agents_backend": "claude-code",
            "tasks": [
                cc_task(
                    "hello",
                    "writer",
                    "Write hello.txt saying hello.",
                    files=["hello.txt"],
                    gates=[{"name": "hello", "run": "grep -qx hello hello.txt"}],
                )
            ],
        },
    )
    api.script(
        reply("Writing it.", tool_use("Write", {"file_path": "hello.txt", "content": "hello\n"})),
        # `env` prints the key: the transcript must not keep it.
        reply(tool_use("Bash", {"command": "cat hello.txt >> checked.txt && env"})),
        reply("hello.txt says hello."),
        key="hello",
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        report = await finished(handle, api, timeout=180)

    assert report.status == "Complete", report.to_markdown()
    assert branch_log(report) == ["hello: Task hello"]
    assert branch_file(report, "hello.txt") == "hello"
    assert branch_file(report, "checked.txt") == "hello"  # Bash ran, in the worktree
    requests = api.requests_for("hello")
    assert [(r.turn, r.status) for r in requests] == [(0, 200), (1, 200), (2, 200)]
    # The agent file's `tools:` is the exact tool list; its body and `model:` are used.
    assert all(tool_names(r) == ["Bash", "Write"] for r in requests)
    assert WRITER_BODY in requests[0].system_text
    assert requests[0].body["model"] == MODEL
    assert "Write hello.txt saying hello." in user_text(requests[0])
    assert "- hello.txt" in user_text(requests[0])  # the files the task owns
    # Claude Code's result: 3 calls of 100 + 50 tokens at sonnet's prices.
    [task] = report.tasks
    assert (task.status, task.attempts) == ("passed", 1)
    assert task.tokens == 450
    assert task.cost_usd == pytest.approx(3 * (100 * 3 + 50 * 15) / 1_000_000)
    assert "| hello | Task hello | writer | passed | 1 | 1/1 | 450 | $0.00 |" in (
        report.to_markdown()
    )
    # The transcript is kept as an artifact; the key is in none of it.
    folder = run_folder(tmp_path, handle.id, "hello")
    kinds = [r["kind"] for r in records(folder)]
    assert kinds[0] == "start" and "ResultMessage" in kinds and kinds[-1] == "end"
    assert api.api_key not in (folder / "transcript.jsonl").read_text()
    assert api.api_key not in (folder / "claude-launcher.sh").read_text()
    assert git(repo, "status", "--short") == ""  # the user's checkout is untouched


async def test_max_turns_fails_the_attempt_the_fix_loop_retries_then_it_escalates(
    client: Client, task_queue: str, tmp_path: Path, api: MessagesAPI
) -> None:
    repo_with_agents(tmp_path)
    plan = write_plan(
        tmp_path,
        {
            "agents_backend": "claude-code",
            "max_turns": 1,
            "tasks": [cc_task("loops", "writer", "Write many files.")],
        },
    )
    # Every attempt: one tool call, then Claude Code stops at its one turn.
    api.script(reply(tool_use("Bash", {"command": "echo turn >> turns.log"})), key="loops")
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        escalation = await pending_escalation(handle, timeout=180)
        assert escalation.task_id == "loops"
        assert "stopped after 1 turns" in escalation.last_error, escalation
        requests = api.requests_for("loops")
        assert [(r.turn, r.status) for r in requests] == [(0, 200)] * 3  # three attempts
        # Attempts 2 and 3 were told why the one before failed.
        assert "What went wrong last time" not in user_text(requests[0])
        for attempt, request in enumerate(requests[1:], start=2):
            told = user_text(request)
            assert f"This is attempt {attempt}" in told and "stopped after 1 turns" in told
        await handle.execute_update(
            "resolve_escalation", Resolution(escalation_id=escalation.id, action=Action.ABORT)
        )
        report = await finished(handle, api)
    assert report.status != "Complete"
    [task] = report.tasks
    assert task.attempts == 3 and task.tokens == 3 * 150


async def test_a_rejected_key_escalates_at_once_naming_the_key(
    client: Client,
    task_queue: str,
    tmp_path: Path,
    api: MessagesAPI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-not-the-right-one")
    repo_with_agents(tmp_path)
    plan = write_plan(
        tmp_path,
        {"agents_backend": "claude-code", "tasks": [cc_task("keyless", "writer", "Anything.")]},
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        escalation = await pending_escalation(handle, timeout=180)
        assert escalation.task_id == "keyless"
        assert "ANTHROPIC_API_KEY" in escalation.last_error, escalation
        assert "401" in escalation.last_error
        # Not retried, not a fix round: one request, refused.
        assert [r.status for r in api.requests] == [401]
        progress = await handle.query("progress")
        await handle.terminate("test over")
    assert progress is not None
    assert "sk-ant-not-the-right-one" not in escalation.model_dump_json()


async def test_a_budget_stop_asks_and_a_raised_budget_completes(
    client: Client, task_queue: str, tmp_path: Path, api: MessagesAPI
) -> None:
    repo_with_agents(tmp_path)
    plan = write_plan(
        tmp_path,
        {
            "agents_backend": "claude-code",
            "budget": 1.0,
            "tasks": [
                cc_task("costly", "writer", "Write one.txt."),
                cc_task("later", "writer", "Write two.txt.", depends_on=["costly"]),
            ],
        },
    )
    million = {"input_tokens": 1_000_000, "output_tokens": 10}

    write_one = tool_use("Write", {"file_path": "one.txt", "content": "one\n"})

    def costly(request: RecordedRequest) -> Reply:
        # The first call costs $3 and stops the attempt (Claude Code may stop before or after
        # running its Write); after the budget is raised the task goes on in a new session,
        # told so, and writes (again) what it had to.
        if "The budget was raised" not in user_text(request):
            return reply(write_one, usage=million)
        return reply(write_one) if request.turn == 0 else reply("one.txt is written.")

    api.script(costly, costly, key="costly")
    api.script(
        reply(tool_use("Write", {"file_path": "two.txt", "content": "two\n"})),
        reply("two.txt is written."),
        key="later",
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        escalation = await pending_escalation(handle, timeout=180)
        assert "budget" in escalation.reason, escalation
        assert escalation.spent_usd == pytest.approx(3.00015)
        assert api.requests_for("later") == []  # paused before task 2 spent anything
        await handle.execute_update(
            "resolve_escalation",
            Resolution(escalation_id=escalation.id, action=Action.RETRY, budget=20.0),
        )
        report = await finished(handle, api, timeout=180)

    assert report.status == "Complete", report.to_markdown()
    assert branch_file(report, "one.txt") == "one"
    assert branch_file(report, "two.txt") == "two"
    assert report.budget_usd == 20.0
    assert report.cost_usd is not None and report.cost_usd > 3.0


async def test_two_parallel_claude_code_tasks_have_their_own_config_folders(
    client: Client, task_queue: str, tmp_path: Path, api: MessagesAPI
) -> None:
    repo_with_agents(tmp_path)
    plan = write_plan(
        tmp_path,
        {
            "agents_backend": "claude-code",
            "tasks": [
                cc_task("left", "writer", "Write left.txt.", files=["left.txt"]),
                cc_task("right", "writer", "Write right.txt.", files=["right.txt"]),
            ],
        },
    )
    both = threading.Barrier(2, timeout=120)
    met: list[str] = []

    def meet(request: RecordedRequest) -> None:
        # Each session's second call waits for the other's: the two run at the same time.
        both.wait()
        met.append(str(request.conversation))

    for side in ("left", "right"):
        api.script(
            reply(tool_use("Write", {"file_path": f"{side}.txt", "content": f"{side}\n"})),
            Turn(reply(f"{side}.txt written."), before=meet),
            key=side,
        )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        report = await finished(handle, api, timeout=180)

    assert report.status == "Complete", report.to_markdown()
    assert sorted(met) == ["left", "right"]
    folders = [run_folder(tmp_path, handle.id, side) for side in ("left", "right")]
    configs = [folder / "config" for folder in folders]
    assert configs[0] != configs[1] and all(c.is_dir() for c in configs)
    for side, folder in zip(("left", "right"), folders, strict=True):
        [session] = sorted((folder / "config" / "projects").glob("*/*.jsonl"))
        assert f"{side}.txt" in session.read_text()
        other = "right" if side == "left" else "left"
        assert f"Task {other}" not in session.read_text()
