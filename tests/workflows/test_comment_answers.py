"""Answers by `/coord ...` comment on the plan's GitHub issue, end to end: the real Temporal
dev server and worker, PyGithub writing the comments as different people against the local
GitHub of tests/github_server.py, and the CLI answering too."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from github import Auth, Github
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.github_comments import GithubCommentActivities
from coordinator.comment_commands import reply_marker
from coordinator.execution import build_execution_input
from coordinator.handoff import status_marker
from coordinator.report import Progress
from coordinator.validation import validate_plan_file
from tests.cli_support import coord
from tests.engine_support import make_repo, running_worker, shell_task, wait_for, write_plan
from tests.github_server import GithubServer, Json
from tests.workflows.test_github_handoff import (
    REPO,
    TOKEN,
    Handle,
    eventually,
    github_activities,
)
from tests.workflows.test_scale import eager_env as eager_env
from tests.workflows.test_scale import runs_of
from worker import WORKFLOWS
from workflows.execution import ExecutionWorkflow

WRITER, READER = "maintainer-mo", "visitor-vi"
WRITER_TOKEN, READER_TOKEN = "writer-token-0123", "reader-token-0123"
COMMENTS = rf"/repos/{REPO}/issues/1/comments"


@pytest.fixture
def github(tmp_path: Path) -> Iterator[GithubServer]:
    server = GithubServer(tmp_path / "github", token=TOKEN).start()
    server.add_person(WRITER, WRITER_TOKEN, "write")
    server.add_person(READER, READER_TOKEN, "read")
    yield server
    server.stop()


def activities(github: GithubServer) -> list[Any]:
    env = {"GITHUB_API_URL": github.api_url, "GITHUB_TOKEN": TOKEN}
    acts = GithubCommentActivities(env, seconds_between_requests=None, seconds_between_writes=None)
    return [acts.access, acts.status_comment, acts.read_commands, acts.reply]


def say(github: GithubServer, token: str, body: str) -> int:
    """A person writes a comment on issue 1, through PyGithub."""
    gh = Github(auth=Auth.Token(token), base_url=github.api_url, retry=None)
    try:
        return gh.get_repo(REPO).get_issue(1).create_comment(body).id
    finally:
        gh.close()


def replies_to(github: GithubServer, eid: str, comment_id: int) -> list[Json]:
    marker = reply_marker(eid, comment_id)
    return [c for c in github.issue_comments(REPO, 1) if c["body"].startswith(marker)]


async def reply(github: GithubServer, eid: str, comment_id: int) -> str:
    found = await eventually(lambda: replies_to(github, eid, comment_id), timeout=40)
    body: str = found[0]["body"]
    return body


async def start(client: Client, task_queue: str, plan_file: Path) -> Handle:
    result = validate_plan_file(plan_file)
    assert result.ok and result.plan is not None, [str(p) for p in result.problems]
    eid = f"cm-{uuid.uuid4().hex[:10]}"
    request = build_execution_input(result.plan, plan_file, execution_id=eid)
    return await client.start_workflow(
        ExecutionWorkflow.run, request, id=eid, task_queue=task_queue
    )


def answered(progress: Progress, escalation_id: str) -> bool:
    return any(e.id == escalation_id and e.state == "answered" for e in progress.escalations)


async def test_answers_by_comment_refusals_and_exactly_once(
    client: Client, task_queue: str, tmp_path: Path, github: GithubServer, cli_env: dict[str, str]
) -> None:
    make_repo(tmp_path / "repo")
    github.add_repo(REPO, tmp_path / "repo")
    github.add_issue(REPO, "Greeting", "- [ ] a\n- [ ] b\n")
    say(github, WRITER_TOKEN, "/coord abort")  # before the execution: answers nothing
    plan = write_plan(
        tmp_path,
        {
            "tasks": [shell_task("a", "exit 3"), shell_task("b", "exit 4")],
            "handoff": {
                "github": {
                    "repo": REPO,
                    "issue": 1,
                    "comment_poll_seconds": 1,
                    "comment_poll_max_seconds": 2,
                }
            },
        },
    )
    acts = activities(github)
    async with running_worker(client, task_queue, tmp_path, acts):
        handle = await start(client, task_queue, plan)
        eid = handle.id
        progress = await wait_for(handle, lambda p: len(p.pending_escalations) == 2, 90)
        first, second = (e.id for e in progress.pending_escalations)
        # The status comment says that a comment answers too.
        await eventually(
            lambda: any(
                c["body"].startswith(status_marker(eid))
                and "Or answer right here (write access needed): `/coord retry" in c["body"]
                for c in github.issue_comments(REPO, 1)
            )
        )

        # Someone without write access: refused, nothing changes. The reply's response is
        # lost once: the retry finds the reply, and posts no second one.
        github.fail("POST", COMMENTS, 500, after=True, login=github.user)
        refused = say(github, READER_TOKEN, f"/coord skip {first}")
        text = await reply(github, eid, refused)
        assert f"@{READER}: not taken" in text and "write access" in text
        assert "your permission: read" in text
        # A garbled command, and one that does not say which of two escalations.
        garbled = say(github, WRITER_TOKEN, "/coord skp it please")
        text = await reply(github, eid, garbled)
        assert "not a command I understand" in text and "`/coord skip [ESCALATION-ID]`" in text
        assert first in text and second in text
        which = say(github, WRITER_TOKEN, "/coord retry do it better")
        text = await reply(github, eid, which)
        assert "2 escalations are waiting" in text and f"/coord retry {first} GUIDANCE" in text
        progress = await handle.query(ExecutionWorkflow.progress)
        assert [e.state for e in progress.escalations] == ["pending", "pending"]

        # The CLI answers first: a later comment is told who did.
        code, out, err = await coord("resolve", eid, first, "--skip", "--by", "tester", env=cli_env)
        assert code == 0, out + err
        late = say(github, WRITER_TOKEN, f"/coord retry {first}: try harder")
        text = await reply(github, eid, late)
        assert f"escalation `{first}` was already answered (skip) by tester" in text

        # A writer's answer; the worker stops after reading it and before the reply is
        # posted (the first reply attempt fails), and a new worker carries on.
        github.fail("POST", COMMENTS, 500, login=github.user)
        taken = say(github, WRITER_TOKEN, f"/coord skip {second}")
        await wait_for(handle, lambda p: answered(p, second), 40)
        await eventually(lambda: [c for c in github.requests("POST", COMMENTS) if c.status == 500])
    assert replies_to(github, eid, taken) == []  # read and taken, not yet acknowledged
    async with running_worker(client, task_queue, tmp_path, acts):
        text = await reply(github, eid, taken)
        assert text.endswith(f"@{WRITER}: taken: escalation `{second}`: skip.")
        # Then the approval before the handoff, rejected by comment.
        await wait_for(handle, lambda p: p.pending_approval is not None, 60)
        reject = say(github, WRITER_TOKEN, "/coord reject not like this")
        report = await handle.result()
        text = await reply(github, eid, reject)
        assert "`before_handoff` rejected (not like this)" in text

    assert report.status == "Partial", report.to_markdown()
    by = {
        e.id: (e.state, e.answer.action.value if e.answer else "", e.answer.by if e.answer else "")
        for e in report.escalations
    }
    assert by == {first: ("answered", "skip", "tester"), second: ("answered", "skip", WRITER)}
    [approval] = report.approvals
    assert approval.answer is not None
    assert (approval.state, approval.answer.by, approval.answer.reason) == (
        "rejected",
        WRITER,
        "not like this",
    )
    # Every command comment got one reply, the one from before the execution none.
    commands = [c for c in github.issue_comments(REPO, 1) if c["body"].startswith("/coord")]
    assert [len(replies_to(github, eid, c["id"])) for c in commands] == [0, 1, 1, 1, 1, 1, 1]
    # Signals to the phase: one per answer (the skip by comment was not taken twice).
    history = await handle.fetch_history()
    answers_sent = [
        e
        for e in history.events
        if e.HasField("signal_external_workflow_execution_initiated_event_attributes")
    ]
    assert len(answers_sent) == 2
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None, replayed.replay_failure


async def test_comments_read_across_continue_as_new_are_taken_once(
    eager_env: WorkflowEnvironment, tmp_path: Path, github: GithubServer
) -> None:
    """A dev server that suggests continue-as-new after a few dozen events: the reads of the
    comments themselves make the waiting execution hand over to new runs. What was read
    before a handover is never taken or answered again after it."""
    client = eager_env.client
    task_queue = f"comments-carry-{uuid.uuid4().hex[:6]}"
    make_repo(tmp_path / "repo")
    github.add_repo(REPO, tmp_path / "repo")
    github.add_issue(REPO, "Greeting", "- [ ] a\n")
    plan = write_plan(
        tmp_path,
        {
            "tasks": [shell_task("a", "echo a > a.txt")],
            "handoff": {
                "github": {
                    "repo": REPO,
                    "issue": 1,
                    "comment_poll_seconds": 1,
                    "comment_poll_max_seconds": 1,
                }
            },
        },
    )
    async with running_worker(client, task_queue, tmp_path, github_activities(github)):
        handle = await start(client, task_queue, plan)
        eid = handle.id
        await wait_for(handle, lambda p: p.pending_approval is not None, 90)
        early = say(github, WRITER_TOKEN, "/coord skip")
        assert "no escalation is waiting" in await reply(github, eid, early)
        runs = len(await runs_of(client, eid))
        # Wait until the execution has handed over at least once more since the reply.
        deadline = asyncio.get_running_loop().time() + 60
        while len(await runs_of(client, eid)) < runs + 2:
            assert asyncio.get_running_loop().time() < deadline, "no continue-as-new"
            await asyncio.sleep(0.5)
        approve = say(github, WRITER_TOKEN, "/coord approve")
        report = await handle.result()
        text = await reply(github, eid, approve)

    assert report.status == "Complete", report.to_markdown()
    [approval] = report.approvals
    assert approval.answer is not None and approval.answer.by == WRITER
    assert text.endswith(f"@{WRITER}: taken: `before_handoff` approved.")
    assert len(replies_to(github, eid, early)) == 1
    assert len(replies_to(github, eid, approve)) == 1
    assert len(await runs_of(client, eid)) >= 3
