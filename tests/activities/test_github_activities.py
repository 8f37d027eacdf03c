"""The GitHub activities against the local GitHub (tests/github_server.py): PyGithub and git
over HTTP for real, without Temporal. Idempotency, error classification, the token's path."""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.github import GithubActivities
from activities.github_client import rate_limit_wait
from activities.notify import NotifyActivities
from coordinator.handoff import (
    GithubAccessRequest,
    PullRequestRequest,
    PushRequest,
    ReviewRequest,
    StatusCommentRequest,
    TaskRef,
    TickRequest,
    WebhookRequest,
    status_marker,
)
from tests.engine_support import git, make_repo
from tests.github_server import GithubServer

TOKEN = "ghp_testTOKENvalue0123456789"
REPO = "acme/app"
BRANCH = "coord/x1"


@pytest.fixture
def github(tmp_path: Path) -> Iterator[GithubServer]:
    server = GithubServer(tmp_path / "github", token=TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def workspace(tmp_path: Path, github: GithubServer) -> Path:
    """A clone with the execution branch one commit ahead of main; the remote has main."""
    repo = make_repo(tmp_path / "repo")
    github.add_repo(REPO, repo)
    git(repo, "checkout", "-q", "-b", BRANCH)
    commit(repo, "a.txt", "a")
    return repo


def commit(repo: Path, name: str, text: str) -> str:
    (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", f"add {name}")
    return git(repo, "rev-parse", "HEAD")


def activities(github: GithubServer, token: str | None = TOKEN) -> GithubActivities:
    env = {"GITHUB_API_URL": github.api_url}
    if token is not None:
        env["GITHUB_TOKEN"] = token
    return GithubActivities(env, seconds_between_requests=None, seconds_between_writes=None)


def push_request(workspace: Path, force: bool = False) -> PushRequest:
    return PushRequest(
        execution_id="x1", repo=REPO, workspace=str(workspace), branch=BRANCH, force=force
    )


def pr_request(body: str = "the report") -> PullRequestRequest:
    return PullRequestRequest(
        execution_id="x1", repo=REPO, branch=BRANCH, base="main", title="coord: x", body=body
    )


async def failure(fn: Callable[[Any], Awaitable[Any]], arg: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(fn, arg)
    return raised.value


# --- the token --------------------------------------------------------------------------------


async def test_access_says_whether_a_token_is_present_and_never_its_value(
    github: GithubServer,
) -> None:
    present = await ActivityEnvironment().run(
        activities(github).access, GithubAccessRequest(repo=REPO)
    )
    assert present.enabled and TOKEN not in present.model_dump_json()
    absent = await ActivityEnvironment().run(
        activities(github, token=None).access, GithubAccessRequest(repo=REPO)
    )
    assert not absent.enabled
    assert "GITHUB_TOKEN" in absent.reason
    assert github.calls == []  # no network for this


async def test_without_a_token_a_step_fails_for_good_saying_so(
    github: GithubServer, workspace: Path
) -> None:
    err = await failure(activities(github, token=None).push, push_request(workspace))
    assert err.non_retryable and err.type == "GithubNoToken"
    assert "GITHUB_TOKEN is not set" in err.message


# --- push -------------------------------------------------------------------------------------


async def test_push_sends_the_branch_once_with_the_token_in_a_header_only(
    github: GithubServer, workspace: Path
) -> None:
    acts = activities(github)
    first = await ActivityEnvironment().run(acts.push, push_request(workspace))
    head = git(workspace, "rev-parse", BRANCH)
    assert (first.pushed, first.head) == (True, head)
    assert github.branch_head(REPO, BRANCH) == head
    assert TOKEN not in first.remote_url

    again = await ActivityEnvironment().run(acts.push, push_request(workspace))
    assert (again.pushed, again.head) == (False, head)
    assert sum(path == "git-receive-pack" for path, _ in github.git_requests) == 1
    assert {user for _, user in github.git_requests} == {"x-access-token"}

    # A later commit is a plain fast-forward.
    newer = commit(workspace, "b.txt", "b")
    later = await ActivityEnvironment().run(acts.push, push_request(workspace))
    assert (later.pushed, later.previous_remote_head) == (True, head)
    assert github.branch_head(REPO, BRANCH) == newer

    # Nothing of the token stays on disk: not in the clone's config, not in the remote's.
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    for config in (workspace / ".git" / "config", github.repos[REPO].bare / "config"):
        text = config.read_text()
        assert TOKEN not in text and basic not in text and "extraheader" not in text.lower()
    assert TOKEN not in git(workspace, "config", "--list")


async def test_a_remote_branch_that_moved_is_reported_not_overwritten(
    github: GithubServer, workspace: Path, tmp_path: Path
) -> None:
    acts = activities(github)
    await ActivityEnvironment().run(acts.push, push_request(workspace))
    # Someone else pushes a commit we do not have.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", "-b", BRANCH, str(github.repos[REPO].bare), str(other))
    theirs = commit(other, "theirs.txt", "theirs")
    git(other, "push", "-q", "origin", BRANCH)
    commit(workspace, "b.txt", "b")

    err = await failure(acts.push, push_request(workspace))
    assert err.non_retryable and err.type == "RemoteBranchMoved"
    assert f"it is at {theirs[:12]}" in err.message and "force_push" in err.message
    assert github.branch_head(REPO, BRANCH) == theirs  # untouched

    # The plan may allow it: then with a lease on the head just seen.
    forced = await ActivityEnvironment().run(acts.push, push_request(workspace, force=True))
    assert forced.pushed and forced.previous_remote_head == theirs
    assert github.branch_head(REPO, BRANCH) == git(workspace, "rev-parse", BRANCH)


async def test_a_rejected_push_token_is_a_clear_non_retryable_error(
    github: GithubServer, workspace: Path
) -> None:
    err = await failure(activities(github, token="wrong").push, push_request(workspace))
    assert err.non_retryable and err.type == "GithubBadCredentials"
    assert "401" in err.message and "GITHUB_TOKEN" in err.message


# --- pull request -----------------------------------------------------------------------------


async def test_the_pull_request_is_created_once_and_its_body_updated(
    github: GithubServer, workspace: Path
) -> None:
    acts = activities(github)
    await ActivityEnvironment().run(acts.push, push_request(workspace))
    first = await ActivityEnvironment().run(acts.pull_request, pr_request("v1"))
    assert first.created and first.draft
    assert first.url == f"{github.web_url}/{REPO}/pull/{first.number}"
    second = await ActivityEnvironment().run(acts.pull_request, pr_request("v2"))
    assert (second.number, second.created) == (first.number, False)
    [pr] = github.pulls(REPO)
    assert (pr.body, pr.title, pr.pull) == (
        "v2",
        "coord: x",
        {"head": BRANCH, "base": "main", "draft": True},
    )
    assert github.count("POST", f"/repos/{REPO}/pulls") == 1
    # The same body again: nothing to write.
    await ActivityEnvironment().run(acts.pull_request, pr_request("v2"))
    assert github.count("PATCH", rf"/repos/{REPO}/pulls/\d+") == 1


async def test_a_lost_reply_after_creating_the_pull_request_finds_it_next_time(
    github: GithubServer, workspace: Path
) -> None:
    acts = activities(github)
    await ActivityEnvironment().run(acts.push, push_request(workspace))
    github.fail("POST", f"/repos/{REPO}/pulls", 502, after=True)  # created, then the reply lost
    err = await failure(acts.pull_request, pr_request())
    assert not err.non_retryable and "502" in err.message
    retried = await ActivityEnvironment().run(acts.pull_request, pr_request())
    assert not retried.created
    assert len(github.pulls(REPO)) == 1
    assert github.count("POST", f"/repos/{REPO}/pulls") == 1


async def test_a_pull_request_opened_meanwhile_is_taken_not_duplicated(
    github: GithubServer, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list comes back empty, the create says "already exists": find it and update it."""
    acts = activities(github)
    await ActivityEnvironment().run(acts.push, push_request(workspace))
    await ActivityEnvironment().run(acts.pull_request, pr_request("old"))
    real = github._list_pulls
    calls = 0

    def stale_once(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            return 200, [], {}
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(github, "_list_pulls", stale_once)
    ref = await ActivityEnvironment().run(acts.pull_request, pr_request("new"))
    assert not ref.created
    assert [p.body for p in github.pulls(REPO)] == ["new"]
    assert [c.status for c in github.requests("POST", f"/repos/{REPO}/pulls")] == [201, 422]


# --- issue checkboxes, status comment, review -----------------------------------------------------


async def test_ticking_rereads_the_issue_and_changes_only_the_boxes(github: GithubServer) -> None:
    github.add_repo(REPO, make_repo(github.root / "src"))
    body = "Plan:\r\n- [ ] t1: one\r\n- [ ] t2: two\r\n```\r\n- [ ] t1: code\r\n```\r\n"
    number = github.add_issue(REPO, "plan", body)
    acts = activities(github)
    request = TickRequest(repo=REPO, issue=number, tasks=[TaskRef(id="t1", title="one")])
    first = await ActivityEnvironment().run(acts.tick_issue, request)
    assert first.ticked == ["t1"]
    assert github.issues[(REPO, number)].body == body.replace("- [ ] t1: one", "- [x] t1: one")
    # A human edits the issue meanwhile; the next tick starts from their text.
    github.issues[(REPO, number)].body += "- [ ] t3: added by a human\r\n"
    second = await ActivityEnvironment().run(acts.tick_issue, request)
    assert (second.ticked, second.already_ticked) == ([], ["t1"])
    assert github.issues[(REPO, number)].body.endswith("- [ ] t3: added by a human\r\n")
    assert github.count("PATCH", rf"/repos/{REPO}/issues/{number}") == 1


async def test_one_status_comment_per_execution_edited_in_place(github: GithubServer) -> None:
    github.add_repo(REPO, make_repo(github.root / "src"))
    number = github.add_issue(REPO, "plan", "")
    # Plenty of other comments: the marker is found across pages.
    for i in range(45):
        github.comments[9000 + i] = {
            "id": 9000 + i,
            "body": f"comment {i}",
            "created_at": "2025-01-01T00:00:00Z",
            "updated_at": "2025-01-01T00:00:00Z",
            "_repo": REPO,
            "_number": number,
            "_author": "a-human",
        }
    acts = activities(github)

    def request(body: str) -> StatusCommentRequest:
        return StatusCommentRequest(repo=REPO, number=number, execution_id="x1", body=body)

    github.fail("POST", rf"/repos/{REPO}/issues/{number}/comments", 500, after=True)
    err = await failure(acts.status_comment, request("running"))
    assert not err.non_retryable
    made = await ActivityEnvironment().run(acts.status_comment, request("running"))
    assert not made.created  # the lost reply's comment was found by its marker
    edited = await ActivityEnvironment().run(acts.status_comment, request("done"))
    assert edited.updated and edited.id == made.id
    ours = [c for c in github.issue_comments(REPO, number) if c["id"] < 9000]
    assert [c["body"] for c in ours] == [f"{status_marker('x1')}\ndone"]
    assert github.count("POST", rf"/repos/{REPO}/issues/{number}/comments") == 1


async def test_the_verdict_is_posted_once_requesting_changes_falls_back_on_own_pull_requests(
    github: GithubServer, workspace: Path
) -> None:
    acts = activities(github)
    await ActivityEnvironment().run(acts.push, push_request(workspace))
    pr = await ActivityEnvironment().run(acts.pull_request, pr_request())
    request = ReviewRequest(
        repo=REPO, number=pr.number, execution_id="x1", verdict="changes_requested", body="fix"
    )
    posted = await ActivityEnvironment().run(acts.review, request)
    # The token opened the pull request: GitHub refuses REQUEST_CHANGES, so it comments.
    assert (posted.created, posted.event) == (True, "COMMENTED")
    again = await ActivityEnvironment().run(acts.review, request)
    assert (again.created, again.id) == (False, posted.id)
    assert len(github.reviews) == 1


# --- error classification -----------------------------------------------------------------------


async def test_bad_credentials_missing_repository_and_permissions_do_not_retry(
    github: GithubServer, workspace: Path
) -> None:
    err = await failure(activities(github, token="nope").pull_request, pr_request())
    assert (err.non_retryable, err.type) == (True, "GithubBadCredentials")
    assert "401 Bad credentials" in err.message

    missing = pr_request().model_copy(update={"repo": "acme/gone"})
    err = await failure(activities(github).pull_request, missing)
    assert (err.non_retryable, err.type) == (True, "GithubNotFound")
    assert "404" in err.message

    github.fail(
        "GET",
        f"/repos/{REPO}/pulls",
        403,
        message="Resource not accessible by personal access token",
    )
    err = await failure(activities(github).pull_request, pr_request())
    assert (err.non_retryable, err.type) == (True, "GithubForbidden")
    assert "Resource not accessible" in err.message and "repo" in err.message


async def test_a_rate_limit_retries_after_its_reset(github: GithubServer, workspace: Path) -> None:
    reset = int(time.time()) + 5
    github.fail(
        "GET",
        f"/repos/{REPO}/pulls",
        403,
        message="API rate limit exceeded for user ID 1.",
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
    )
    err = await failure(activities(github).pull_request, pr_request())
    assert not err.non_retryable and err.type == "GithubRateLimited"
    assert err.next_retry_delay is not None
    assert timedelta(seconds=3) <= err.next_retry_delay <= timedelta(seconds=7)

    # A secondary limit says how long in Retry-After, sometimes with 429.
    assert rate_limit_wait(429, {"Retry-After": "30"}, "") == 30.0
    assert rate_limit_wait(403, {"x-ratelimit-remaining": "12"}, "Forbidden") is None


async def test_server_errors_and_connection_failures_retry(
    github: GithubServer, workspace: Path
) -> None:
    github.fail("GET", f"/repos/{REPO}/pulls", 503)
    err = await failure(activities(github).pull_request, pr_request())
    assert (err.non_retryable, err.type) == (False, "GithubUnavailable")

    down = GithubActivities(
        {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": "http://127.0.0.1:9/api/v3"},
        seconds_between_requests=None,
    )
    err = await failure(down.pull_request, pr_request())
    assert (err.non_retryable, err.type) == (False, "GithubUnreachable")
    assert "127.0.0.1:9" in err.message


# --- webhook ------------------------------------------------------------------------------------


async def test_the_webhook_posts_json_and_classifies_failures(github: GithubServer) -> None:
    hook = f"{github.web_url}/hooks/chat"
    payload: dict[str, object] = {"event": "waiting", "text": "hello"}
    acts = NotifyActivities({"CHAT_WEBHOOK": hook})
    sent = await ActivityEnvironment().run(
        acts.webhook, WebhookRequest(execution_id="x1", url_env="CHAT_WEBHOOK", payload=payload)
    )
    assert sent.delivered and github.webhooks == [{"path": "/hooks/chat", **payload}]

    github.fail("POST", "/hooks/chat", 500)
    err = await failure(acts.webhook, WebhookRequest(execution_id="x1", url=hook, payload={}))
    assert not err.non_retryable and "500" in err.message
    github.fail("POST", "/hooks/chat", 404)
    err = await failure(acts.webhook, WebhookRequest(execution_id="x1", url=hook, payload={}))
    assert err.non_retryable
    err = await failure(
        NotifyActivities({}).webhook,
        WebhookRequest(execution_id="x1", url_env="CHAT_WEBHOOK", payload={}),
    )
    assert err.non_retryable and "CHAT_WEBHOOK" in err.message


async def test_an_api_url_that_does_not_match_the_servers_answers_is_a_clear_error(
    github: GithubServer,
) -> None:
    """The server names itself 127.0.0.1; reached as localhost, its URLs look foreign."""
    github.add_repo(REPO, make_repo(github.root / "src"))
    number = github.add_issue(REPO, "plan", "- [ ] t1: one\n")
    acts = GithubActivities(
        {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": github.api_url.replace("127.0.0.1", "localhost")},
        seconds_between_requests=None,
    )
    request = TickRequest(repo=REPO, issue=number, tasks=[TaskRef(id="t1", title="one")])
    err = await failure(acts.tick_issue, request)
    assert (err.non_retryable, err.type) == (True, "GithubBadApiUrl")
    assert "https://HOST/api/v3" in err.message
    assert github.issues[(REPO, number)].body == "- [ ] t1: one\n"
