"""The GitHub handoff end to end: the real Temporal dev server, the real worker, real git
pushing over HTTP, PyGithub talking to the local GitHub of tests/github_server.py."""

from __future__ import annotations

import asyncio
import base64
import logging
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.github_comments import GithubCommentActivities
from activities.notify import NotifyActivities
from coordinator.escalation import Action, ApprovalAnswer, Resolution
from coordinator.execution import PhaseInput, build_execution_input
from coordinator.handoff import GithubPhaseInput, TaskRef, status_marker
from coordinator.pull_request import pull_request_body
from coordinator.report import ExecutionReport
from coordinator.validation import validate_plan_file
from tests.cli_support import coord
from tests.engine_support import (
    command_agent,
    git,
    make_repo,
    pending_escalation,
    running_worker,
    shell_task,
    wait_for,
    write_plan,
)
from tests.github_server import GithubServer
from worker import WORKFLOWS
from workflows.execution import ExecutionWorkflow
from workflows.integration_phase import IntegrationPhaseWorkflow

TOKEN = "fake-e2e-SECRET-github-token-0123456789"
REPO = "acme/app"
UI = "http://ui.example:8233/namespaces/default/workflows"
ISSUE = (
    "Breakdown of the greeting feature.\r\n"
    "\r\n"
    "- [ ] A: write a.txt\r\n"
    "- [ ] Task b (shell)\r\n"
    "  - [ ] a sub-step nobody ticks\r\n"
    "- [ ] c: not in this plan\r\n"
    "```\r\n"
    "- [ ] a: inside a code block\r\n"
    "```\r\n"
)
TICKED = ISSUE.replace("- [ ] A: write", "- [x] A: write").replace(
    "- [ ] Task b (shell)", "- [x] Task b (shell)"
)

Handle = WorkflowHandle[ExecutionWorkflow, ExecutionReport]


@pytest.fixture
def github(tmp_path: Path) -> Iterator[GithubServer]:
    server = GithubServer(tmp_path / "github", token=TOKEN).start()
    yield server
    server.stop()


def github_activities(github: GithubServer, token: str | None = TOKEN) -> list[Any]:
    """The GitHub activities with their own environment and no throttling (fast tests)."""
    env = {"GITHUB_API_URL": github.api_url} | ({"GITHUB_TOKEN": token} if token else {})
    acts = GithubCommentActivities(env, seconds_between_requests=None, seconds_between_writes=None)
    return [
        acts.access,
        acts.push,
        acts.pull_request,
        acts.tick_issue,
        acts.status_comment,
        acts.review,
        acts.read_commands,
        acts.reply,
    ]


def plan_with(tmp_path: Path, github: GithubServer, **extra: Any) -> Path:
    make_repo(tmp_path / "repo")
    github.add_repo(REPO, tmp_path / "repo")
    return write_plan(
        tmp_path,
        {
            "tasks": [
                shell_task("a", "echo a > a.txt"),
                shell_task("b", "echo b > b.txt", depends_on=["a"]),
            ],
            **extra,
        },
    )


async def start(client: Client, task_queue: str, plan_file: Path) -> Handle:
    result = validate_plan_file(plan_file)
    assert result.ok and result.plan is not None, [str(p) for p in result.problems]
    eid = f"gh-{uuid.uuid4().hex[:10]}"
    request = build_execution_input(result.plan, plan_file, execution_id=eid)
    request.ui_url = f"{UI}/{eid}"
    return await client.start_workflow(
        ExecutionWorkflow.run, request, id=eid, task_queue=task_queue
    )


async def eventually(condition: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)
    return value


def secret_forms(token: str) -> list[bytes]:
    basic = base64.b64encode(f"x-access-token:{token}".encode())
    return [token.encode(), basic]


async def assert_token_nowhere(
    client: Client, handle: Handle, roots: list[Path], logs: str, token: str = TOKEN
) -> None:
    """Not in any history of the execution and its phases, any file, any log line."""
    forms = secret_forms(token)
    ids = [handle.id] + [f"{handle.id}/{p}" for p in ("setup", "implementation", "integration")]
    for wid in ids:
        history = await client.get_workflow_handle(wid).fetch_history()
        text = history.to_json().encode()
        assert not any(f in text for f in forms), f"token in the history of {wid}"
    scanned = 0
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                scanned += 1
                data = path.read_bytes()
                assert not any(f in data for f in forms), f"token in {path}"
    assert scanned > 10  # the scan saw the clone, its .git/config, the artifacts
    assert not any(f.decode() in logs for f in forms), "token in the logs"


async def test_the_full_handoff_and_running_the_integration_again(
    client: Client,
    task_queue: str,
    tmp_path: Path,
    github: GithubServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The worker's real configuration path: its environment, PyGithub's default throttles.
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", github.api_url)
    caplog.set_level(logging.DEBUG)
    command_agent(tmp_path / "agents", "approver", "echo LGTM")
    plan = plan_with(
        tmp_path,
        github,
        specialists_dir="./agents",
        reviewer="approver",
        handoff={"github": {"repo": REPO, "issue": 1}},
        notify={"webhook": f"{github.web_url}/hooks/chat"},
    )
    issue = github.add_issue(REPO, "Greeting", ISSUE)
    assert issue == 1
    marker = status_marker("")[:-4]  # "<!-- coord:"

    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        eid = handle.id
        # A GitHub handoff asks for approval first: the status comment says how to answer.
        await wait_for(handle, lambda p: p.pending_approval is not None)
        asking = await eventually(
            lambda: [
                c for c in github.issue_comments(REPO, issue) if f"coord approve {eid}" in c["body"]
            ]
        )
        body = asking[0]["body"]
        assert body.startswith(status_marker(eid) + "\n")
        assert f"temporal workflow update execute --workflow-id {eid} --name approve" in body
        assert f"[Temporal UI]({UI}/{eid})" in body
        waiting = await eventually(lambda: github.webhooks)
        assert waiting[0]["event"] == "waiting"
        assert waiting[0]["waiting"][0]["commands"][0] == f"coord approve {eid}"
        assert github.pulls(REPO) == [] and github.branch_head(REPO, f"coord/{eid}") is None
        await handle.execute_update(ExecutionWorkflow.approve, ApprovalAnswer(by="lead"))
        report = await handle.result()

        assert report.status == "Complete", report.to_markdown()
        ws, handoff = report.workspace, report.handoff
        assert ws is not None and handoff is not None
        # The branch, pushed; one pull request whose body is the final report.
        assert github.branch_head(REPO, ws.branch) == ws.head_commit == handoff.pushed_head
        [pr] = github.pulls(REPO)
        assert pr.body == pull_request_body(report, f"{UI}/{eid}")
        assert (pr.title, pr.pull) == (
            "coord: engine",
            {"head": ws.branch, "base": "main", "draft": True},
        )
        assert handoff.pull_request is not None and handoff.pull_request.number == pr.number
        assert f"Pull request [#{pr.number}]({github.web_url}/{REPO}/pull/{pr.number})" in pr.body
        # The right boxes ticked, every other byte as it was.
        assert github.issues[(REPO, issue)].body == TICKED
        assert sorted(handoff.ticked) == ["a", "b"]
        # One status comment, edited in place through the phases, ending with the result.
        [comment] = [c for c in github.issue_comments(REPO, issue) if c["body"].startswith(marker)]
        assert "### coord: engine: Complete" in comment["body"]
        assert github.count("POST", rf"/repos/{REPO}/issues/\d+/comments") == 1
        assert github.count("PATCH", r"/repos/acme/app/issues/comments/\d+") >= 3
        assert handoff.status_comment_url == comment_url(github, issue, comment["id"])
        # The reviewer's verdict, as a review of the pull request.
        [review] = github.reviews.values()
        assert review["state"] == "COMMENTED" and "`approver` approves" in review["body"]
        assert [w["event"] for w in github.webhooks] == ["waiting", "finished"]
        assert github.webhooks[-1]["pull_request"] == handoff.pull_request.url

        # Running the integration phase again repeats nothing.
        pushes = sum(p == "git-receive-pack" for p, _ in github.git_requests)
        writes = [c for c in github.calls if c.method != "GET"]
        plan_model = validate_plan_file(plan).plan
        assert plan_model is not None
        again = PhaseInput(
            execution_id=eid,
            plan=plan_model,
            workspace=ws,
            routes={},
            specialists={},
            github=GithubPhaseInput(
                repo=REPO,
                issue=issue,
                title="coord: engine",
                body=pr.body,
                finished=[TaskRef(id="a", title="Task a"), TaskRef(id="b", title="Task b")],
            ),
        )
        for run in range(2):
            result = await client.execute_workflow(
                IntegrationPhaseWorkflow.run,
                again,
                id=f"{eid}/integration-again-{run}",
                task_queue=task_queue,
            )
            assert result.github is not None and result.github.push is not None
            assert result.github.push.pushed is False
            assert result.github.pull_request is not None
            assert (result.github.pull_request.number, result.github.pull_request.created) == (
                pr.number,
                False,
            )
            assert result.github.tick is not None
            assert sorted(result.github.tick.already_ticked) == ["a", "b"]
        assert sum(p == "git-receive-pack" for p, _ in github.git_requests) == pushes
        assert [c for c in github.calls if c.method != "GET"] == writes  # no write at all
        assert github.branch_head(REPO, ws.branch) == ws.head_commit
        assert len(github.pulls(REPO)) == 1

    await assert_token_nowhere(client, handle, [tmp_path], caplog.text)
    # The new workflow path replays (as a worker restarted mid-run would replay it).
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    for wid in (eid, f"{eid}/integration", f"{eid}/review"):
        history = await client.get_workflow_handle(wid).fetch_history()
        replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert replayed.replay_failure is None, (wid, replayed.replay_failure)


def comment_url(github: GithubServer, issue: int, comment_id: int) -> str:
    return f"{github.web_url}/{REPO}/issues/{issue}#issuecomment-{comment_id}"


async def test_lost_replies_and_server_errors_are_retried_without_duplicates(
    client: Client, task_queue: str, tmp_path: Path, github: GithubServer
) -> None:
    """Without an issue the status comment goes on the pull request. The pull request and the
    comment are created but their replies lost (a crash between "created" and "recorded"), and
    listing pull requests fails with a 502 first: one pull request, one comment."""
    plan = plan_with(
        tmp_path,
        github,
        approval={"before_handoff": False},
        handoff={"github": {"repo": REPO, "draft": False, "title": "Greetings"}},
    )
    github.fail("GET", f"/repos/{REPO}/pulls", 502)
    github.fail("POST", f"/repos/{REPO}/pulls", 502, after=True)
    github.fail("POST", rf"/repos/{REPO}/issues/\d+/comments", 500, after=True)
    async with running_worker(client, task_queue, tmp_path, github_activities(github)):
        report = await (await start(client, task_queue, plan)).result()

    assert report.status == "Complete", report.to_markdown()
    [pr] = github.pulls(REPO)
    assert (pr.title, pr.pull["draft"] if pr.pull else None) == ("Greetings", False)
    assert [c.status for c in github.requests("POST", f"/repos/{REPO}/pulls")] == [502]
    [comment] = github.issue_comments(REPO, pr.number)
    assert comment["body"].startswith(status_marker(report.execution_id))
    assert "Complete" in comment["body"]
    assert [c.status for c in github.requests("POST", rf"/repos/{REPO}/issues/\d+/comments")] == [
        500
    ]
    assert report.handoff is not None and report.handoff.ticked == []
    assert not report.problems


async def test_bad_credentials_escalate_with_a_clear_message(
    client: Client, task_queue: str, tmp_path: Path, github: GithubServer
) -> None:
    plan = plan_with(
        tmp_path,
        github,
        approval={"before_handoff": False},
        handoff={"github": {"repo": REPO, "issue": 1}},
    )
    github.add_issue(REPO, "Greeting", ISSUE)
    async with running_worker(
        client, task_queue, tmp_path, github_activities(github, token="ghp_revoked")
    ):
        handle = await start(client, task_queue, plan)
        escalation = await pending_escalation(handle)
        assert (escalation.phase, escalation.id) == ("integration", "integration:github:1")
        assert "GitHub rejected the token" in escalation.last_error
        assert "401 Bad credentials" in escalation.last_error
        assert "GITHUB_TOKEN" in escalation.last_error
        # Bad credentials are not retried: one request for the push's repository lookup.
        assert github.count("GET", f"/repos/{REPO}") == 1
        await handle.execute_update(
            "resolve_escalation",
            Resolution(escalation_id=escalation.id, action=Action.SKIP),
        )
        report = await handle.result()

    assert report.status == "Partial"
    assert report.handoff is not None and not report.handoff.enabled
    assert "a human chose to skip after: GitHub rejected the token" in report.handoff.skipped_reason
    assert any("open its pull request yourself" in todo for todo in report.human_todo)
    # The status comment could not be written either: said once, not once per attempt.
    assert (
        sum(p.startswith("status comment not updated: GitHub rejected") for p in report.problems)
        == 1
    )
    assert github.pulls(REPO) == [] and github.issues[(REPO, 1)].body == ISSUE
    assert github.git_requests == []


async def test_a_rate_limit_waits_for_the_reset_then_succeeds(
    client: Client, task_queue: str, tmp_path: Path, github: GithubServer
) -> None:
    plan = plan_with(
        tmp_path,
        github,
        approval={"before_handoff": False},
        handoff={"github": {"repo": REPO}},
    )
    reset = int(time.time()) + 4
    github.fail(
        "POST",
        f"/repos/{REPO}/pulls",
        403,
        message="API rate limit exceeded for user ID 1.",
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
    )
    async with running_worker(client, task_queue, tmp_path, github_activities(github)):
        report = await (await start(client, task_queue, plan)).result()

    assert report.status == "Complete", report.to_markdown()
    limited, created = github.requests("POST", f"/repos/{REPO}/pulls")
    assert (limited.status, created.status) == (403, 201)
    assert created.at >= reset  # waited for the reset, then sent it again
    assert len(github.pulls(REPO)) == 1


async def test_without_a_token_the_handoff_stays_local_and_the_report_says_why(
    client: Client, task_queue: str, tmp_path: Path, github: GithubServer
) -> None:
    plan = plan_with(
        tmp_path,
        github,
        approval={"before_handoff": False},
        handoff={"github": {"repo": REPO, "issue": 1}},
        notify={"webhook": f"{github.web_url}/hooks/chat"},  # needs no token
    )
    async with running_worker(client, task_queue, tmp_path, github_activities(github, None)):
        report = await (await start(client, task_queue, plan)).result()

    assert report.status == "Complete", report.to_markdown()
    assert report.handoff is not None and not report.handoff.enabled
    assert report.handoff.skipped_reason == "the worker has no GITHUB_TOKEN in its environment"
    assert (
        f"- GitHub `{REPO}`: pull request step skipped: the worker has no GITHUB_TOKEN in its "
        "environment. The branch stays local." in report.to_markdown()
    )
    assert github.calls == [] and github.git_requests == []
    [finished] = github.webhooks
    assert (finished["event"], finished["status"]) == ("finished", "Complete")
    assert finished["text"].startswith(f"coord: plan engine (execution {report.execution_id})")
    assert report.workspace is not None
    assert [p.name for p in report.phases if p.status == "done"] == [
        "setup",
        "implementation",
        "integration",
    ]


async def test_a_moved_remote_branch_escalates_and_the_status_comment_says_how_to_answer(
    client: Client, task_queue: str, tmp_path: Path, github: GithubServer
) -> None:
    plan = plan_with(
        tmp_path,
        github,
        branch="feature/greeting",
        approval={"before_handoff": False},
        handoff={"github": {"repo": REPO, "issue": 1}},
        notify={"webhook_env": "CHAT_HOOK"},
    )
    github.add_issue(REPO, "Greeting", ISSUE)
    # Someone pushed to the branch name the execution will use.
    other = tmp_path / "other"
    bare = github.repos[REPO].bare
    subprocess.run(["git", "clone", "-q", str(bare), str(other)], check=True)
    git(other, "checkout", "-q", "-b", "feature/greeting")
    (other / "theirs.txt").write_text("theirs\n")
    git(other, "add", "-A")
    git(other, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "theirs")
    git(other, "push", "-q", "origin", "feature/greeting")
    theirs = git(other, "rev-parse", "HEAD")

    hook = NotifyActivities({"CHAT_HOOK": f"{github.web_url}/hooks/chat"}).webhook
    async with running_worker(client, task_queue, tmp_path, [*github_activities(github), hook]):
        handle = await start(client, task_queue, plan)
        escalation = await pending_escalation(handle)
        eid = handle.id
        assert "the remote branch feature/greeting" in escalation.last_error
        assert f"it is at {theirs[:12]}" in escalation.last_error
        assert github.branch_head(REPO, "feature/greeting") == theirs  # not overwritten
        # People learn it where they look: the issue's status comment and the chat.
        asking = await eventually(
            lambda: [
                c
                for c in github.issue_comments(REPO, 1)
                if f"coord resolve {eid} {escalation.id} --retry" in c["body"]
            ]
        )
        body = asking[0]["body"]
        assert f"**Escalation `{escalation.id}`** (phase integration" in body
        assert f"Last error: `the remote branch feature/greeting at {github.web_url}" in body
        assert f"--workflow-id {eid} --name resolve_escalation --input" in body
        chat = await eventually(lambda: [w for w in github.webhooks if w["event"] == "waiting"])
        assert chat[0]["waiting"][0]["id"] == escalation.id
        assert f"coord resolve {eid} {escalation.id} --skip" in chat[0]["waiting"][0]["commands"]
        assert "answer: coord resolve" in chat[0]["text"]

        # The human deletes the stray branch and retries: the handoff goes through.
        git(bare, "update-ref", "-d", "refs/heads/feature/greeting")
        await handle.execute_update(
            "resolve_escalation",
            Resolution(escalation_id=escalation.id, action=Action.RETRY),
        )
        report = await handle.result()

    assert report.status == "Complete", report.to_markdown()
    assert report.workspace is not None
    assert github.branch_head(REPO, "feature/greeting") == report.workspace.head_commit
    assert len(github.pulls(REPO)) == 1
    [comment] = github.issue_comments(REPO, 1)
    assert "Complete" in comment["body"] and "Escalation" not in comment["body"]
    assert [w["event"] for w in github.webhooks] == ["waiting", "finished"]


async def test_coord_run_github_hands_off_with_links_to_the_web_ui(
    cli_env: dict[str, str],
    worker: None,
    tmp_path: Path,
    github: GithubServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)  # the worker's environment (in this process)
    monkeypatch.setenv("GITHUB_API_URL", github.api_url)
    plan = plan_with(tmp_path, github, approval={"before_handoff": False})
    eid = f"cli-{uuid.uuid4().hex[:8]}"

    code, _, err = await coord("run", str(plan), "--github", "not-a-repo", env=cli_env)
    assert code == 2 and "--github: 'not-a-repo' must look like 'owner/name'" in err

    code, out, err = await coord(
        "run", str(plan), "--github", REPO, "--wait", "--id", eid, env=cli_env
    )
    assert code == 0, err
    [pr] = github.pulls(REPO)
    assert f"[Temporal UI](http://ui.example:8233/namespaces/default/workflows/{eid})" in pr.body
    assert f"Pull request [#{pr.number}]" in out  # the report printed by --wait


BREAKDOWN_ISSUE = (
    "# Greeting card\r\n"
    "\r\n"
    "Written by a planning agent.\r\n"
    "\r\n"
    "```yaml\r\n"
    "reviewer: null\r\n"
    "approval: {before_handoff: false}\r\n"
    "```\r\n"
    "\r\n"
    "## L0: Words\r\n"
    "\r\n"
    "- [x] T0: Pick the words (shell)\r\n"
    "- [ ] T1: Write hello.txt (shell)\r\n"
    "  ```sh\r\n"
    "  echo hello > hello.txt\r\n"
    "  ```\r\n"
    "- [ ] Write the **farewell** in `bye.txt` (shell)\r\n"
    "  ```sh\r\n"
    "  echo bye > bye.txt\r\n"
    "  ```\r\n"
    "\r\n"
    "## Checklist\r\n"
    "\r\n"
    "- [ ] a human's own reminder\r\n"
)


async def test_coord_run_from_issue_runs_the_issues_breakdown_and_ticks_its_items(
    cli_env: dict[str, str],
    worker: None,
    tmp_path: Path,
    github: GithubServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)  # the worker's environment (in this process)
    monkeypatch.setenv("GITHUB_API_URL", github.api_url)
    env = {**cli_env, "GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": github.api_url}  # the CLI's
    repo = make_repo(tmp_path / "repo")
    github.add_repo(REPO, repo)
    number = github.add_issue(REPO, "Greeting card", BREAKDOWN_ISSUE)
    broken = github.add_issue(
        REPO, "Broken", "# Broken\n\n## L0: x\n\n- [ ] T1: a\n  depends on: T9\n"
    )
    eid = f"issue-{uuid.uuid4().hex[:8]}"

    code, _, err = await coord(
        "run", "--from-issue", f"{REPO}#{broken}", "--repo", str(repo), env=env
    )
    assert code == 2 and f"{REPO}#{broken}:6:" in err and "t9" in err, err
    code, _, err = await coord("run", "--from-issue", f"{REPO}#99", env=env)
    assert code == 2 and "404" in err, err
    greedy = github.add_issue(
        REPO, "Greedy", BREAKDOWN_ISSUE.replace("reviewer: null", "env_from: [GITHUB_TOKEN]")
    )
    code, _, err = await coord("run", "--from-issue", f"{REPO}#{greedy}", env=env)
    assert code == 2 and "env_from: ['GITHUB_TOKEN']" in err and "plan file" in err, err
    tokenless = {k: v for k, v in env.items() if k != "GITHUB_TOKEN"}
    code, _, err = await coord("run", "--from-issue", f"{REPO}#{number}", env=tokenless)
    assert code == 2 and "401 Bad credentials" in err and "GITHUB_TOKEN" in err, err

    code, out, err = await coord(
        "run",
        "--from-issue",
        f"{github.web_url}/{REPO}/issues/{number}",
        "--repo",
        str(repo),
        "--wait",
        "--id",
        eid,
        env=env,
    )
    assert code == 0, err + out
    # Both open items ticked, the bold one by the exact text read from the issue; the done
    # item, the checklist and every other byte as they were.
    assert github.issues[(REPO, number)].body == BREAKDOWN_ISSUE.replace(
        "- [ ] T1:", "- [x] T1:"
    ).replace("- [ ] Write the **farewell**", "- [x] Write the **farewell**")
    [pr] = github.pulls(REPO)
    assert pr.title == "coord: greeting-card"
    [comment] = github.issue_comments(REPO, number)
    assert comment["body"].startswith(status_marker(eid)) and "Complete" in comment["body"]
    assert github.branch_head(REPO, f"coord/{eid}") is not None
