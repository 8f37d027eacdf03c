"""A run waiting on a human, seen from outside: the CoordWaitingSince search attribute and the
saved list queries of docs/web-ui.md against the real dev server (SDK and `temporal` CLI), the
current details the Web UI shows, and the `notify` webhook in both forms (coord's JSON and
Slack's `text` + `blocks`) received by a real local HTTP server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHandle

from cli.devserver import temporal_binary
from coordinator.escalation import Action, Resolution
from coordinator.report import ExecutionReport
from coordinator.waiting import STATIC_DETAILS
from tests.cli_support import coord
from tests.engine_support import (
    make_repo,
    pending_escalation,
    running_worker,
    shell_task,
    start,
    write_plan,
)
from workflows import search_attributes as sa
from workflows.execution import ExecutionWorkflow

# The saved queries docs/web-ui.md gives ("everything waiting on me"; executions only).
WAITING = "CoordWaitingSince IS NOT NULL"
ESCALATED = 'ExecutionStatus="Running" AND CoordinatorStatus="escalated"'
EXECUTIONS_ONLY = 'WorkflowType="ExecutionWorkflow"'

Handle = WorkflowHandle[ExecutionWorkflow, ExecutionReport]


class Hooks:
    """A local HTTP server recording the JSON POSTed to it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                hooks.received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/chat"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    server = Hooks()
    yield server
    server.stop()


async def listed(client: Client, query: str, execution_id: str, present: bool) -> None:
    """Visibility is eventually consistent: wait until the query does (not) list it."""
    for _ in range(100):
        ids = [
            wf.id
            async for wf in client.list_workflows(f"({query}) AND WorkflowId = '{execution_id}'")
        ]
        if (execution_id in ids) == present:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(
        f"{query!r} {'does not list' if present else 'still lists'} {execution_id}"
    )


def cli_list(server_address: str, query: str) -> list[str]:
    out = subprocess.run(
        [
            *(str(temporal_binary()), "workflow", "list", "--address", server_address),
            *("--namespace", "default", "--query", query, "--output", "json"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [wf["execution"]["workflowId"] for wf in json.loads(out or "[]")]


async def current_details(handle: Handle) -> str:
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return str(metadata.current_details)


def broken_plan(tmp_path: Path, hooks: Hooks, form: str) -> Path:
    make_repo(tmp_path / "repo")
    return write_plan(
        tmp_path,
        {
            "confine": "off",
            "notify": {"webhook": hooks.url, "format": form},
            "tasks": [
                shell_task("broken", "echo 'cannot reach the database' >&2; exit 3"),
                shell_task("fine", "echo y > y.txt", depends_on=[]),
            ],
        },
    )


async def test_a_waiting_run_is_listed_described_and_announced_in_coord_json(
    client: Client, task_queue: str, tmp_path: Path, hooks: Hooks, server_address: str
) -> None:
    plan = broken_plan(tmp_path, hooks, "json")
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        escalation = await pending_escalation(handle)
        eid = handle.id

        # The Web UI's filters: waiting on a human, and since when.
        for query in (WAITING, ESCALATED, EXECUTIONS_ONLY):
            await listed(client, query, eid, present=True)
        desc = await handle.describe()
        since = desc.typed_search_attributes.get(sa.WAITING_SINCE)
        assert since is not None and escalation.raised_at is not None
        assert abs(since - escalation.raised_at) < timedelta(seconds=1)
        assert eid in cli_list(server_address, f"{WAITING} AND {EXECUTIONS_ONLY}")
        # "Waiting for more than ..." is a comparison with a timestamp.
        before, after = (since + timedelta(hours=h) for h in (-1, 1))
        await listed(client, f'CoordWaitingSince < "{after.isoformat()}"', eid, present=True)
        await listed(client, f'CoordWaitingSince < "{before.isoformat()}"', eid, present=False)
        # The phase children (listed beside it) do not match: only the execution waits.
        family = f"RootWorkflowId = '{eid}'"
        children = [wf.workflow_type async for wf in client.list_workflows(family)]
        assert "ImplementationPhase" in children and "ExecutionWorkflow" in children
        waiting_family = [wf.id async for wf in client.list_workflows(f"{family} AND {WAITING}")]
        assert waiting_family == [eid]
        assert cli_list(server_address, f"{family} AND {EXECUTIONS_ONLY}") == [eid]

        # The current details lead with the question, the choices and the commands.
        details = await current_details(handle)
        assert details.startswith("## Waiting on a human since ")
        assert details.index(f"### Escalation `{escalation.id}`") < details.index("## Progress")
        assert "> " + escalation.question.strip().splitlines()[0] in details
        assert f"coord resolve {eid} {escalation.id} --skip" in details
        # The Temporal command on short lines, as the shell takes them when pasted.
        assert "temporal workflow update execute \\\n  --workflow-id " in details
        assert f"--workflow-id {eid} --name resolve_escalation \\\n  --input '{{" in details
        assert "- **retry**: " in details and "- **abort**: " in details
        assert "cannot reach the database" in details

        # The webhook: the question, the choices and the commands.
        [waiting] = await until(lambda: hooks.received)
        assert waiting["event"] == "waiting"
        [asked] = waiting["waiting"]
        assert asked["id"] == escalation.id and asked["question"] == escalation.question
        assert [c["action"] for c in asked["choices"]] == ["retry", "skip", "abort"]
        assert asked["choices"][1]["command"] == f"coord resolve {eid} {escalation.id} --skip"
        assert "--name resolve_escalation" in asked["temporal_commands"][0]
        assert waiting["waiting_since"] == asked["raised_at"]

        await handle.execute_update(
            "resolve_escalation", Resolution(escalation_id=escalation.id, action=Action.SKIP)
        )
        # Answered: no longer waiting (the attribute is unset, the details lead with progress).
        await listed(client, WAITING, eid, present=False)
        report = await handle.result()

    assert report.status == "Partial", report.to_markdown()
    desc = await handle.describe()
    assert desc.typed_search_attributes.get(sa.WAITING_SINCE) is None
    assert [h["event"] for h in hooks.received] == ["waiting", "finished"]


async def test_the_slack_form_carries_text_and_blocks_and_coord_run_points_to_the_details(
    client: Client, cli_env: dict[str, str], worker: None, tmp_path: Path, hooks: Hooks
) -> None:
    plan = broken_plan(tmp_path, hooks, "slack")
    eid = f"slack-{uuid.uuid4().hex[:8]}"
    code, _, err = await coord("run", str(plan), "--id", eid, env=cli_env)
    assert code == 0, err
    handle = client.get_workflow_handle_for(ExecutionWorkflow.run, eid)
    desc = await handle.describe()
    assert await desc.static_summary() == "plan engine: 2 tasks"
    assert await desc.static_details() == STATIC_DETAILS
    assert "**Current Details** lead with the question" in STATIC_DETAILS
    escalation = await pending_escalation(handle)
    [waiting] = await until(lambda: hooks.received)
    await handle.execute_update(
        "resolve_escalation", Resolution(escalation_id=escalation.id, action=Action.ABORT)
    )
    report = await handle.result()

    assert set(waiting) == {"text", "blocks"}
    assert waiting["text"].startswith(
        f"coord: plan engine (execution {eid}) is waiting on a human."
    )
    blocks = waiting["blocks"]
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "coord: engine waits on you"},
    }
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(len(t) <= 3000 for t in texts)
    joined = "\n".join(texts)
    assert f"*Escalation `{escalation.id}`* (task `broken`" in joined
    assert "• *retry*: " in joined and "• *skip*: " in joined and "• *abort*: " in joined
    assert f"```coord resolve {eid} {escalation.id} --retry" in joined
    assert f"coord resolve {eid} {escalation.id} --abort\n" not in joined  # last line of a block
    assert f"coord resolve {eid} {escalation.id} --abort```" in joined
    assert "cannot reach the database" in joined

    finished = hooks.received[-1]
    assert finished["text"].startswith(
        f"coord: plan engine (execution {eid}) ended {report.status}"
    )
    assert finished["blocks"][0]["text"]["text"] == f"coord: engine ended {report.status}"


async def until(condition: Any, timeout: float = 30) -> Any:
    for _ in range(int(timeout / 0.2)):
        if value := condition():
            return value
        await asyncio.sleep(0.2)
    raise AssertionError("condition not met in time")
