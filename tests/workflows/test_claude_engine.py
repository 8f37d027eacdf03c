"""Claude specialists end to end: real executions on the Temporal dev server whose specialists
talk to the local Messages API server (tests/anthropic_server.py) through the real `anthropic`
client. Conversations are keyed by a substring of their system prompt: a task id, or the first
line of a built-in definition's body when one task has two specialists."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError

from coordinator.escalation import Action, Escalation, Resolution
from coordinator.report import ExecutionReport
from tests.anthropic_server import (
    Block,
    MessagesAPI,
    RecordedRequest,
    Reply,
    Turn,
    content_text,
    finish,
    rate_limited,
    reply,
    serve_messages_api,
    tool_use,
    usage,
)
from tests.engine_support import (
    branch_log,
    git,
    make_repo,
    pending_escalation,
    running_worker,
    start,
    write_plan,
)
from tests.workflows.test_durability import (
    AFTER_A_CRASH,
    QUICK,
    until,
    worker_env,
    worker_processes,
)
from workflows.execution import ExecutionWorkflow

EDITOR = "str_replace_based_edit_tool"
IMPLEMENTER = "You are the implementer"  # the built-ins' bodies tell their conversations apart
FIXER = "You are the fixer"
REVIEW = "coord-review"  # the review's task id, in the reviewer's brief

Handle = WorkflowHandle[ExecutionWorkflow, ExecutionReport]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[MessagesAPI]:
    """The server, and the in-process worker pointed at it (it reads the environment when an
    activity runs)."""
    with serve_messages_api() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield server


def edit(command: str, **fields: Any) -> Block:
    return tool_use(EDITOR, {"command": command, **fields})


def bash(command: str) -> Block:
    return tool_use("bash", {"command": command})


def claude_task(task_id: str, prompt: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": task_id,
        "title": f"Task {task_id}",
        "specialist": "implementer",
        "prompt": prompt,
        **extra,
    }


def transcript(root: Path, handle: Handle, task_id: str, attempt: int = 1) -> list[dict[str, Any]]:
    path = (
        root / "artifacts" / handle.id / "tasks" / task_id / f"attempt-{attempt}.transcript.jsonl"
    )
    return [json.loads(line) for line in path.read_text().splitlines()]


def turns(requests: list[RecordedRequest]) -> list[int]:
    return sorted(r.turn for r in requests if r.turn is not None)


async def finished(handle: Handle, api: MessagesAPI, timeout: float = QUICK) -> ExecutionReport:
    """The report; on a timeout, what the execution and the scripted server were doing."""
    try:
        return await asyncio.wait_for(handle.result(), timeout)
    except TimeoutError:
        progress = await handle.query(ExecutionWorkflow.progress)
        raise AssertionError(
            f"no result after {timeout} s; script problems: {api.failures}; "
            f"progress: {progress.model_dump_json()}"
        ) from None


def branch_file(report: ExecutionReport, name: str) -> str:
    ws = report.workspace
    assert ws is not None
    return git(Path(ws.path), "show", f"{ws.branch}:{name}")


# --------------------------------------------------------------------------- (1) a whole run


async def test_a_claude_implementer_and_reviewer_complete_an_execution(
    client: Client, task_queue: str, tmp_path: Path, api: MessagesAPI
) -> None:
    make_repo(tmp_path / "repo", {"app.py": "def greet():\n    return 'hi'\n"})
    plan = write_plan(
        tmp_path,
        {
            "reviewer": "code-reviewer",
            "tasks": [
                claude_task(
                    "shout",
                    "greet() must return 'HI', with a test.",
                    files=["app.py", "test_app.py"],
                    gates=[
                        {
                            "name": "greets",
                            "run": "python3 -c \"import app; assert app.greet() == 'HI'\"",
                        },
                        {"name": "tests", "run": "python3 test_app.py"},
                    ],
                )
            ],
        },
    )
    worked = usage(1000, 200, cache_read_input_tokens=4000)  # 5 200 tokens, $0.0072 a call
    api.script(
        reply(edit("view", path="app.py"), usage=worked),
        reply(
            "Shouting.",
            edit("str_replace", path="app.py", old_str="'hi'", new_str="'HI'"),
            usage=worked,
        ),
        reply(
            edit(
                "create",
                path="test_app.py",
                file_text="import app\n\nassert app.greet() == 'HI'\nprint('ok')\n",
            ),
            usage=worked,
        ),
        reply(bash("python3 test_app.py && git status --short"), usage=worked),
        reply(finish("greet shouts", files_changed=["app.py", "test_app.py"]), usage=worked),
        key="shout",
    )
    looked = usage(500, 100)  # 600 tokens, $0.003 a call
    api.script(
        reply(edit("view", path="app.py"), usage=looked),
        reply(finish("fine", verdict="approve"), usage=looked),
        key=REVIEW,
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        report = await finished(handle, api)
        progress = await handle.query(ExecutionWorkflow.progress)

    assert report.status == "Complete", report.to_markdown()
    # The tools really worked in the worktree: the task's one commit carries both files.
    assert branch_log(report) == ["shout: Task shout"]
    assert branch_file(report, "app.py") == "def greet():\n    return 'HI'"
    assert "assert app.greet() == 'HI'" in branch_file(report, "test_app.py")
    [task] = report.tasks
    assert (task.status, task.attempts) == ("passed", 1)
    assert [(g.name, g.passed) for g in task.gates] == [("greets", True), ("tests", True)]
    # What the model saw of its tools: the edit worked, bash ran the new test.
    shout = api.replies_for("shout")
    assert turns(shout) == [0, 1, 2, 3, 4]
    assert not any(r.get("is_error") for q in shout for r in q.tool_results())
    assert "ok" in content_text(shout[4].tool_results()[0]["content"])
    assert "Task `shout`" in shout[0].system_text and IMPLEMENTER in shout[0].system_text

    # The reviewer: view-only, no shell, and its approval ends the review.
    review = api.replies_for(REVIEW)
    assert turns(review) == [0, 1]
    tools = {t["name"] for t in review[0].body["tools"]}
    assert "bash" not in tools and {EDITOR, "finish"} <= tools
    assert "HI" in content_text(review[1].tool_results()[0]["content"])
    assert report.review.startswith("approve after 1 round")
    assert {p.name: p.status for p in report.phases}["review"] == "done"

    # Tokens and cost: per task, outside tasks (the review), in total; progress agrees.
    assert task.tokens == 5 * 5200
    assert task.cost_usd == pytest.approx(5 * 0.0072)
    [spend] = report.spend
    assert spend.tokens == 1200
    assert spend.cost_usd == pytest.approx(0.006)
    assert report.tokens == 5 * 5200 + 1200
    assert report.cost_usd == pytest.approx(0.036 + 0.006)
    assert (progress.tokens, progress.cost_usd) == (report.tokens, report.cost_usd)
    assert progress.tasks[0].tokens == task.tokens
    markdown = report.to_markdown()
    assert f"Tokens: {report.tokens}, cost $0.04" in markdown
    assert "| shout | Task shout | implementer | passed | 1 | 2/2 | 26000 | $0.04 |" in markdown


# --------------------------------------------------------------------------- (2) the fix loop


async def test_the_fixer_gets_the_failing_gate_output_and_fixes_the_task(
    client: Client, task_queue: str, tmp_path: Path, api: MessagesAPI
) -> None:
    make_repo(tmp_path / "repo")
    check = (
        'python3 -c "import calc; r = calc.add(2, 2); '
        "assert r == 4, f'add(2, 2) gave {r}, expected 4'\""
    )
    plan = write_plan(
        tmp_path,
        {
            "fixer": "fixer",
            # The fix keeps calc.py's size and may land in the second its first version was
            # imported: a bytecode cache would still hold `a - b`.
            "env": {"PYTHONDONTWRITEBYTECODE": "1"},
            "tasks": [
                claude_task(
                    "adder", "Write calc.add(a, b).", gates=[{"name": "adds", "run": check}]
                )
            ],
        },
    )
    api.script(
        reply(edit("create", path="calc.py", file_text="def add(a, b):\n    return a - b\n")),
        reply(finish("calc.add written")),
        key=IMPLEMENTER,
    )
    api.script(
        reply(edit("str_replace", path="calc.py", old_str="a - b", new_str="a + b")),
        reply(finish("add adds now")),
        key=FIXER,
    )
    async with running_worker(client, task_queue, tmp_path):
        report = await finished(await start(client, task_queue, plan), api)

    assert report.status == "Complete", report.to_markdown()
    [task] = report.tasks
    assert (task.status, task.attempts) == ("passed", 2)
    assert branch_file(report, "calc.py") == "def add(a, b):\n    return a + b"
    assert branch_log(report) == ["adder: Task adder"]
    # The fixer's brief carried the gate's own output (and worked on attempt 1's file).
    [first] = [r for r in api.replies_for(FIXER) if r.turn == 0]
    assert "# What went wrong last time" in first.system_text
    assert "This is attempt 2" in first.system_text
    assert "gate 'adds' failed (exit code 1)" in first.system_text
    assert "AssertionError: add(2, 2) gave 0, expected 4" in first.system_text
    assert "What went wrong" not in api.replies_for(IMPLEMENTER)[0].system_text
    assert turns(api.replies_for(IMPLEMENTER)) == [0, 1]
    assert turns(api.replies_for(FIXER)) == [0, 1]
    # Both attempts' spending counts for the task.
    assert task.tokens == 4 * 150


# --------------------------------------------------------------------------- (3)-(5) API errors


async def test_a_rate_limit_is_waited_out_and_the_conversation_goes_on(
    client: Client, task_queue: str, tmp_path: Path, api: MessagesAPI
) -> None:
    make_repo(tmp_path / "repo")
    plan = write_plan(
        tmp_path,
        {
            "tasks": [
                claude_task(
                    "limited", "Write a.txt.", gates=[{"name": "a", "run": "test -f a.txt"}]
                )
            ]
        },
    )
    arrived: list[float] = []
    # retry-after 3 s, longer than Temporal's first backoff (1 s): the wait shows it is obeyed.
    api.script(
        reply(edit("create", path="a.txt", file_text="a\n")),
        Turn(
            reply(finish("a.txt written")),
            errors=[rate_limited(3)],
            before=lambda _: arrived.append(time.monotonic()),
        ),
        key="limited",
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        report = await finished(handle, api)

    assert report.status == "Complete", report.to_markdown()
    requests = api.requests_for("limited")
    assert [(r.turn, r.status) for r in requests] == [(0, 200), (1, 429), (1, 200)]
    assert requests[1].response is not None
    assert requests[1].response["error"]["type"] == "rate_limit_error"
    assert len(arrived) == 2 and arrived[1] - arrived[0] >= 2.9
    assert branch_file(report, "a.txt") == "a"
    [task] = report.tasks
    assert (task.status, task.attempts) == ("passed", 1)  # an activity retry, not a fix round
    kinds = [r["kind"] for r in transcript(tmp_path, handle, "limited")]
    assert "resume" in kinds and kinds.count("response") == 2


async def test_overloaded_on_every_attempt_escalates_and_abort_ends_partial(
    client: Client, task_queue: str, tmp_path: Path, api: MessagesAPI
) -> None:
    make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path, {"tasks": [claude_task("busy", "Anything.")]})
    api.script(Turn(reply(finish("never")), errors=[529, 529, 529]), key="busy")
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        escalation = await pending_escalation(handle)
        assert [(r.turn, r.status) for r in api.requests_for("busy")] == [(0, 529)] * 3
        assert escalation.task_id == "busy"
        assert "overloaded" in escalation.last_error.lower(), escalation
        assert "529" in escalation.last_error
        await handle.execute_update(
            "resolve_escalation",
            Resolution(escalation_id=escalation.id, action=Action.ABORT),
            result_type=Escalation,
        )
        report = await finished(handle, api)
    assert report.status == "Partial", report.to_markdown()
    assert report.tasks[0].status == "failed"
    assert len(api.requests) == 3  # Temporal's three attempts; the SDK retried nothing


async def test_a_rejected_key_escalates_after_one_attempt_naming_the_key(
    client: Client,
    task_queue: str,
    tmp_path: Path,
    api: MessagesAPI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-revoked-key")
    make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path, {"tasks": [claude_task("locked", "Anything.")]})
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        escalation = await pending_escalation(handle)
        # Non-retryable: one request, no second activity attempt, no fix round.
        assert [r.status for r in api.requests] == [401]
        assert escalation.task_id == "locked"
        assert "ANTHROPIC_API_KEY" in escalation.last_error, escalation
        assert "401" in escalation.last_error
        assert "sk-ant-revoked-key" not in escalation.model_dump_json()
        await handle.execute_update(
            "resolve_escalation",
            Resolution(escalation_id=escalation.id, action=Action.ABORT),
            result_type=Escalation,
        )
        report = await finished(handle, api)
    assert report.status == "Partial"
    assert report.tasks[0].attempts == 1
    assert len(api.requests) == 1


# --------------------------------------------------------------------------- (6) the budget


async def test_the_execution_budget_pauses_and_a_raised_budget_completes_it(
    client: Client, task_queue: str, tmp_path: Path, api: MessagesAPI
) -> None:
    make_repo(tmp_path / "repo")
    plan = write_plan(
        tmp_path,
        {
            "budget": 1.0,
            "tasks": [
                claude_task("budget-one", "Write one.txt."),
                claude_task("budget-two", "Write two.txt.", depends_on=["budget-one"]),
            ],
        },
    )
    # One call of a million input tokens at $3 per million: $3.00015 with the output.
    api.script(
        reply(
            edit("create", path="one.txt", file_text="one\n"),
            finish("one.txt written"),
            usage=usage(1_000_000, 10),
        ),
        key="budget-one",
    )
    api.script(
        reply(edit("create", path="two.txt", file_text="two\n"), finish("two.txt written")),
        key="budget-two",
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        escalation = await pending_escalation(handle)
        assert escalation.id == "implementation:budget:1"
        assert escalation.task_id is None
        assert escalation.budget_usd == 1.0
        assert escalation.spent_usd == pytest.approx(3.00015)
        assert "budget reached: $3.00 of $1.00" in escalation.reason
        assert api.requests_for("budget-two") == []  # paused before task 2 spent anything

        for refused in (
            Resolution(escalation_id=escalation.id, action=Action.RETRY),
            Resolution(escalation_id=escalation.id, action=Action.RETRY, budget=2.0),
            Resolution(escalation_id=escalation.id, action=Action.SKIP),
        ):
            with pytest.raises(WorkflowUpdateFailedError) as err:
                await handle.execute_update("resolve_escalation", refused)
            said = str(err.value.cause)
            assert "implementation:budget:1" in said and "--budget" in said, said
        progress = await handle.query(ExecutionWorkflow.progress)
        assert [e.state for e in progress.escalations] == ["pending"]

        answered = await handle.execute_update(
            "resolve_escalation",
            Resolution(escalation_id=escalation.id, action=Action.RETRY, budget=20.0),
            result_type=Escalation,
        )
        assert answered.state == "answered"
        report = await finished(handle, api)

    assert report.status == "Complete", report.to_markdown()
    assert report.budget_usd == 20.0
    # Nothing done was redone: one model call for task 1, in all.
    assert len(api.requests_for("budget-one")) == 1
    assert len(api.requests_for("budget-two")) == 1
    assert {t.id: (t.status, t.attempts) for t in report.tasks} == {
        "budget-one": ("passed", 1),
        "budget-two": ("passed", 1),
    }
    assert branch_log(report) == ["budget-one: Task budget-one", "budget-two: Task budget-two"]
    assert report.cost_usd == pytest.approx(3.00015 + 0.00105)
    [then] = report.escalations
    assert then.answer is not None and then.answer.budget == 20.0
    assert "of a $20.00 budget" in report.to_markdown()


# --------------------------------------------------------------------------- (7) a crash


async def test_a_worker_killed_mid_conversation_resumes_from_the_transcript(
    client: Client, server_address: str, task_queue: str, tmp_path: Path, api: MessagesAPI
) -> None:
    make_repo(tmp_path / "repo")
    plan = write_plan(
        tmp_path,
        {
            "tasks": [
                claude_task(
                    "durable",
                    "Write b.txt.",
                    gates=[{"name": "b", "run": "test -f b.txt"}],
                )
            ]
        },
    )
    reached, crashed = threading.Event(), threading.Event()

    def hold_until_the_crash(request: RecordedRequest) -> None:
        reached.set()
        crashed.wait(timeout=AFTER_A_CRASH)

    api.script(
        reply(bash("echo once >> ran.txt")),
        reply(edit("create", path="b.txt", file_text="b\n")),
        Turn(reply(finish("b.txt written")), before=hold_until_the_crash),
        key="durable",
    )
    env = {**worker_env(server_address, task_queue, tmp_path), **api.env()}
    with worker_processes(env, tmp_path) as workers:
        try:
            first = workers.start()
            handle = await start(client, task_queue, plan)
            await until(reached.is_set, QUICK, "the third model call", workers)
            workers.kill(first)
            crashed.set()
            workers.start()
            report = await finished(handle, api, AFTER_A_CRASH)
        finally:
            crashed.set()

    assert report.status == "Complete", f"{report.to_markdown()}\n{workers.output()}"
    # Turns 1 and 2 were paid for once; turn 3 was asked again by the new worker.
    assert turns(api.requests_for("durable")) == [0, 1, 2, 2]
    # The tools of the turns before the crash did not run again.
    assert branch_file(report, "ran.txt") == "once"
    assert branch_file(report, "b.txt") == "b"
    [task] = report.tasks
    assert (task.status, task.attempts) == ("passed", 1)
    records = transcript(tmp_path, handle, "durable")
    [resume] = [r for r in records if r["kind"] == "resume"]
    assert (resume["activity_attempt"], resume["turn"]) == (2, 2)
    assert [r["kind"] for r in records].count("start") == 1


# --------------------------------------------------------------------------- (8) secrets


async def test_no_secret_reaches_history_transcripts_or_logs(
    client: Client,
    task_queue: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    key = f"sk-ant-api03-{uuid.uuid4().hex}{uuid.uuid4().hex}"
    token = f"ghp_{uuid.uuid4().hex}"
    monkeypatch.setenv("GITHUB_TOKEN", token)
    make_repo(tmp_path / "repo")
    plan = write_plan(
        tmp_path,
        {
            "tasks": [
                claude_task("snoop", "Show the environment.", gates=[{"name": "env", "run": "env"}])
            ]
        },
    )
    with serve_messages_api(key) as api:
        for name, value in api.env().items():
            monkeypatch.setenv(name, value)
        api.script(
            reply(bash("env; echo key=$ANTHROPIC_API_KEY token=$GITHUB_TOKEN > seen.txt")),
            reply(finish("looked around", notes_for_reviewer="env printed")),
            key="snoop",
        )
        async with running_worker(client, task_queue, tmp_path):
            handle = await start(client, task_queue, plan)
            report = await finished(handle, api)
            histories = await histories_of(client, handle.id)

    assert report.status == "Complete", report.to_markdown()
    # The scan is not vacuous: bash ran `env` and the model got its output.
    shown = content_text(api.replies_for("snoop")[1].tool_results()[0]["content"])
    assert "PATH=" in shown
    assert branch_file(report, "seen.txt") == "key= token="
    assert set(histories) >= {handle.id, f"{handle.id}/setup", f"{handle.id}/implementation"}
    files = [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]
    assert any(p.name.endswith(".transcript.jsonl") for p in files), files
    assert any(".bash" in str(p) for p in files), files  # the bash tool's own log
    assert "looked around" in histories[f"{handle.id}/implementation"]  # the activity result
    assert "snoop" in caplog.text  # the worker's log of this run is in it
    places = {f"history of {wid}": text for wid, text in histories.items()}
    places |= {str(p): p.read_text(errors="replace") for p in files}
    places["worker log"] = caplog.text
    places["report"] = report.model_dump_json()
    for where, text in places.items():
        assert key not in text, f"the API key leaked into {where}"
        assert token not in text, f"GITHUB_TOKEN leaked into {where}"


async def histories_of(client: Client, workflow_id: str) -> dict[str, str]:
    """workflow id -> its whole history as text (payloads decoded), for a workflow and all
    the workflows it started."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    found = {workflow_id: "\n".join(readable(history.to_json_dict()))}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            child = event.child_workflow_execution_started_event_attributes.workflow_execution
            found |= await histories_of(client, child.workflow_id)
    return found


def readable(node: object) -> Iterator[str]:
    """Every string in a history's JSON, and what base64 ones decode to: payloads (inputs,
    results, heartbeat details, failures' details) are base64 there."""
    if isinstance(node, dict):
        for value in node.values():
            yield from readable(value)
    elif isinstance(node, list):
        for value in node:
            yield from readable(value)
    elif isinstance(node, str):
        yield node
        with contextlib.suppress(ValueError):
            yield base64.b64decode(node, validate=True).decode()


# --------------------------------------------------------------------------- (9) /proc


async def test_bash_cannot_read_the_workers_keys_from_proc(
    client: Client, server_address: str, task_queue: str, tmp_path: Path, api: MessagesAPI
) -> None:
    """A command run by the same user can read its parent's initial environment in
    /proc/<ppid>/environ. The worker re-executes itself without its keys there, and still
    uses them: the Messages API server only answers the right key. (Without the jail, whose
    PID namespace hides the worker entirely: tests/activities/test_jail.py.)"""
    make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path, {"tasks": [claude_task("snoop", "Look around.")]})
    token = "ghp_proc_environ_must_not_show_this"
    seen: list[str] = []

    def look(request: RecordedRequest) -> Reply:
        seen.append(content_text(request.tool_results()[0]["content"]))
        return reply(finish("looked"))

    api.script(
        reply(bash("tr '\\0' '\\n' < /proc/$PPID/environ; echo; cat /proc/$PPID/cmdline")),
        look,
        key="snoop",
    )
    env = {
        **worker_env(server_address, task_queue, tmp_path),
        **api.env(),
        "GITHUB_TOKEN": token,
        "COORD_CONFINE": "off",
    }
    with worker_processes(env, tmp_path) as workers:
        worker = workers.start()
        handle = await start(client, task_queue, plan)
        report = await finished(handle, api)
        environ = Path(f"/proc/{worker.pid}/environ").read_bytes()

    assert report.status == "Complete", f"{report.to_markdown()}\n{workers.output()}"
    (output,) = seen
    assert "TEMPORAL_ADDRESS" in output  # it did read the worker's environment ...
    assert api.api_key not in output and token not in output  # ... without the keys
    assert api.api_key.encode() not in environ and token.encode() not in environ
