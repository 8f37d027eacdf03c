"""The GitHub handoff: push the execution branch, the pull request, the issue's checkboxes, the
status comment and the review. Every activity is safe to repeat: it looks for what an earlier
attempt may have done (a pushed head, an open pull request for the branch, a comment or a
review carrying the execution's marker, a box already ticked) before doing anything.

The token comes from the worker's environment (`GITHUB_TOKEN`, and `GITHUB_API_URL` for
GitHub Enterprise), read when an activity runs; it reaches the push's git through a credential
helper served for that one command (activities/git_auth.py), never an environment, a URL,
`.git/config`, an argument, a log line or workflow history.

PyGithub's own retry re-sends POSTs (and sleeps through rate limits inside a call), so the
client is built without it: Temporal's retry policy (three attempts) owns retrying, and each
failure is classified here: bad credentials, a missing repository or a missing permission are
non-retryable with a message that says what to fix; a rate limit retries after its reset; 5xx
and connection errors retry.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from github import Auth, Github, GithubException
from temporalio import activity
from temporalio.exceptions import ApplicationError
from urllib3.util import Retry

from activities.git import GitError, git, run_git
from activities.git_auth import TokenHelper, borrowing_repository, token_helper
from activities.heartbeat import heartbeating
from coordinator.checkboxes import TaskLine, tick_checkboxes
from coordinator.handoff import (
    DEFAULT_API_URL,
    MAX_BODY_CHARS,
    CommentRef,
    GithubAccess,
    GithubAccessRequest,
    PullRequestRef,
    PullRequestRequest,
    PushRequest,
    PushResult,
    ReviewRef,
    ReviewRequest,
    StatusCommentRequest,
    TickRequest,
    TickResult,
    review_marker,
    status_marker,
)

T = TypeVar("T")

TOKEN_ENV = "GITHUB_TOKEN"
API_URL_ENV = "GITHUB_API_URL"
REQUEST_TIMEOUT_S = 30
PUSH_TIMEOUT_S = 600
# Without a reset time to go by, wait this long after a rate limit.
DEFAULT_RATE_WAIT_S = 60.0
SCOPES = (
    "a classic token needs the `repo` scope (`public_repo` for public repositories); a "
    "fine-grained one Contents, Pull requests and Issues: read and write"
)


def _message(err: GithubException) -> str:
    """GitHub's message and the messages of its `errors` list."""
    data = err.data if isinstance(err.data, dict) else {}
    parts = [str(data.get("message") or err.message or "")]
    for item in data.get("errors") or []:
        if isinstance(item, dict):
            text = item.get("message") or item.get("code") or ""
            field = item.get("field")
            parts.append(f"{field}: {text}" if field else str(text))
        else:
            parts.append(str(item))
    return "; ".join(p for p in parts if p) or "no message"


def rate_limit_wait(status: int, headers: Mapping[str, str], message: str) -> float | None:
    """Seconds to wait when a response is a rate limit (primary or secondary), else None."""
    lower = {k.lower(): v for k, v in headers.items()}
    limited = (
        lower.get("x-ratelimit-remaining") == "0"
        or "retry-after" in lower
        or "rate limit" in message.lower()
    )
    if status not in (403, 429) or not limited:
        return None
    try:
        if "retry-after" in lower:
            return max(float(lower["retry-after"]), 1.0)
        if "x-ratelimit-reset" in lower:
            return max(float(lower["x-ratelimit-reset"]) - time.time(), 0.0) + 1.0
    except ValueError:
        pass
    return DEFAULT_RATE_WAIT_S


def classify(err: Exception, what: str, api_url: str) -> ApplicationError:
    """The ApplicationError Temporal acts on: retry, retry later, or stop and tell a human."""
    if isinstance(err, GithubException):
        status, message = err.status, _message(err)
        wait = rate_limit_wait(status, err.headers or {}, message)
        if wait is not None:
            return ApplicationError(
                f"GitHub rate limit while {what} ({status} {message}); retrying in {wait:.0f}s",
                type="GithubRateLimited",
                next_retry_delay=timedelta(seconds=wait),
            )
        if status == 401:
            return ApplicationError(
                f"GitHub rejected the token while {what} (401 {message}): set a valid "
                f"{TOKEN_ENV} in the worker's environment ({SCOPES}); API {api_url}",
                type="GithubBadCredentials",
                non_retryable=True,
            )
        if status == 403:
            return ApplicationError(
                f"GitHub refused {what} (403 {message}): the token lacks a permission; {SCOPES}",
                type="GithubForbidden",
                non_retryable=True,
            )
        if status == 404:
            return ApplicationError(
                f"GitHub answered 404 Not Found while {what}: the repository or the issue does "
                f"not exist at {api_url}, or the token cannot see it ({SCOPES})",
                type="GithubNotFound",
                non_retryable=True,
            )
        if status >= 500 or status in (408, 409):
            return ApplicationError(
                f"GitHub failed while {what} ({status} {message})", type="GithubUnavailable"
            )
        return ApplicationError(
            f"GitHub refused {what} ({status} {message})",
            type="GithubRefused",
            non_retryable=True,
        )
    # Connection refused, DNS, TLS, timeouts: the network or GitHub may come back.
    return ApplicationError(
        f"could not reach GitHub at {api_url} while {what}: {type(err).__name__}: {err}",
        type="GithubUnreachable",
    )


def make_client(
    env: Mapping[str, str],
    *,
    retry: Retry | None = None,
    seconds_between_requests: float | None = 0.25,
    seconds_between_writes: float | None = 1.0,
    require_token: bool = True,
) -> Github:
    """PyGithub for `GITHUB_API_URL` with `GITHUB_TOKEN` from `env` (no retry unless given)."""
    token = env.get(TOKEN_ENV) or None
    if token is None and require_token:
        raise ApplicationError(
            f"{TOKEN_ENV} is not set in the environment of the worker that ran this step "
            "(every worker of the task queue needs it for the GitHub handoff)",
            type="GithubNoToken",
            non_retryable=True,
        )
    url = (env.get(API_URL_ENV) or DEFAULT_API_URL).rstrip("/")
    if urlsplit(url).scheme not in ("http", "https"):
        raise ApplicationError(
            f"{API_URL_ENV}={url} is not an http(s) URL (GitHub Enterprise: https://HOST/api/v3)",
            type="GithubBadApiUrl",
            non_retryable=True,
        )
    return Github(
        auth=Auth.Token(token) if token else None,
        base_url=url,
        timeout=REQUEST_TIMEOUT_S,
        retry=retry,
        seconds_between_requests=seconds_between_requests,
        seconds_between_writes=seconds_between_writes,
        lazy=True,  # no GET for objects we only address (a repository, an issue)
    )


@dataclass(frozen=True)
class FetchedIssue:
    repo: str
    number: int
    title: str
    body: str
    html_url: str
    clone_url: str


class GithubReadError(RuntimeError):
    """Reading from GitHub outside an activity (the CLI) failed; the message says why."""


# Outside Temporal, reads may retry on their own: GETs only, never a write.
READ_RETRY = Retry(
    total=3,
    backoff_factor=0.5,
    status_forcelist=(500, 502, 503, 504),
    allowed_methods=frozenset({"GET"}),
    raise_on_status=False,
)


def fetch_issue(repo: str, number: int, env: Mapping[str, str] | None = None) -> FetchedIssue:
    """An issue's text and its repository's clone URL, for `coord run --from-issue`. The
    token is optional here (public repositories), but GitHub limits anonymous reads."""
    env = os.environ if env is None else env
    api_url = (env.get(API_URL_ENV) or DEFAULT_API_URL).rstrip("/")
    what = f"reading issue #{number} of {repo}"
    try:
        client = make_client(env, retry=READ_RETRY, require_token=False)
    except ApplicationError as err:
        raise GithubReadError(err.message) from None
    try:
        repository = client.get_repo(repo)
        issue = repository.get_issue(number)
        if issue.pull_request is not None:
            raise GithubReadError(f"{repo}#{number} is a pull request, not an issue")
        return FetchedIssue(
            repo=repo,
            number=number,
            title=issue.title,
            body=issue.body or "",
            html_url=issue.html_url,
            clone_url=repository.clone_url,
        )
    except (GithubException, requests.RequestException, OSError) as err:
        raise GithubReadError(classify(err, what, api_url).message) from None
    finally:
        client.close()


def truncate_body(body: str, note: str) -> str:
    if len(body) <= MAX_BODY_CHARS:
        return body
    return body[:MAX_BODY_CHARS] + f"\n\n… (truncated: {note})\n"


_MOVED = ("[rejected]", "non-fast-forward", "fetch first", "stale info")
_DENIED = (
    "authentication failed",
    "could not read username",
    "permission to",
    "returned error: 401",
    "returned error: 403",
    "returned error: 404",
    "repository not found",
)


class GithubActivities:
    """Built once per worker. `environ` replaces the worker's environment (tests); the
    throttles are PyGithub's (GitHub asks for a second between writes)."""

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        seconds_between_requests: float | None = 0.25,
        seconds_between_writes: float | None = 1.0,
    ) -> None:
        self._environ = environ
        self._between_requests = seconds_between_requests
        self._between_writes = seconds_between_writes

    # --- configuration, from the worker's environment ----------------------------------------

    def _env(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def _token(self) -> str | None:
        return self._env().get(TOKEN_ENV) or None

    def api_url(self) -> str:
        return (self._env().get(API_URL_ENV) or DEFAULT_API_URL).rstrip("/")

    def _client(self) -> Github:
        return make_client(
            self._env(),
            retry=None,  # Temporal retries; PyGithub's default would re-send POSTs
            seconds_between_requests=self._between_requests,
            seconds_between_writes=self._between_writes,
        )

    async def _call(self, what: str, work: Callable[[Github], T]) -> T:
        """Run PyGithub calls off the event loop, heartbeating; classify what fails."""
        client = self._client()
        try:
            async with heartbeating(what):
                return await asyncio.to_thread(work, client)
        except (GithubException, requests.RequestException, OSError) as err:
            raise classify(err, what, self.api_url()) from err
        except AssertionError as err:
            # PyGithub asserts that the URLs in answers lie under its base URL.
            raise ApplicationError(
                f"the server at {API_URL_ENV}={self.api_url()} answered {what} with URLs "
                f"outside it ({err}); GitHub Enterprise's API is https://HOST/api/v3",
                type="GithubBadApiUrl",
                non_retryable=True,
            ) from err
        finally:
            client.close()

    # --- activities ----------------------------------------------------------------------

    @activity.defn(name="github_access")
    async def access(self, request: GithubAccessRequest) -> GithubAccess:
        """Whether this worker can hand off (a token is present); no network, no value."""
        if self._token() is None:
            return GithubAccess(
                enabled=False,
                reason=f"the worker has no {TOKEN_ENV} in its environment",
                api_url=self.api_url(),
            )
        return GithubAccess(enabled=True, api_url=self.api_url())

    @activity.defn(name="github_push")
    async def push(self, request: PushRequest) -> PushResult:
        """Push the execution branch to the repository's clone URL. Pushing again is a no-op;
        a remote branch with commits we do not have is reported, not overwritten (unless
        `force`, and then only over the head seen just before)."""
        clone_url: str = await self._call(
            f"reading repository {request.repo}", lambda gh: gh.get_repo(request.repo).clone_url
        )
        token = self._token()
        assert token is not None  # _call checked
        ws = Path(request.workspace)
        ref = f"refs/heads/{request.branch}"
        async with heartbeating(f"push {request.branch}"):
            try:
                head = await git("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=ws)
            except GitError as err:
                raise ApplicationError(
                    f"branch {request.branch} is missing in the workspace {ws}",
                    type="BranchMissing",
                    non_retryable=True,
                ) from err
            # The git that gets the token runs outside the clone (see activities/git_auth.py).
            async with borrowing_repository(ws) as scratch, token_helper(clone_url, token) as auth:
                remote_head = await self._remote_head(clone_url, ref, scratch, auth)
                if remote_head == head:
                    return PushResult(
                        remote_url=clone_url,
                        branch=request.branch,
                        head=head,
                        pushed=False,
                        previous_remote_head=remote_head,
                    )
                if remote_head and not request.force and not await _contains(ws, head, remote_head):
                    raise _moved(request, clone_url, remote_head, head)
                args = ["push", "--porcelain", clone_url, f"{head}:{ref}"]
                if request.force:
                    args.insert(1, f"--force-with-lease={ref}:{remote_head or ''}")
                result = await run_git(
                    *args, cwd=scratch, env=auth.env, started=auth.started, timeout=PUSH_TIMEOUT_S
                )
            if result.returncode != 0:
                output = f"{result.stdout}\n{result.stderr}".strip()
                raise _push_failure(request, clone_url, remote_head, head, output)
        activity.logger.info("pushed %s to %s at %s", request.branch, clone_url, head[:12])
        return PushResult(
            remote_url=clone_url,
            branch=request.branch,
            head=head,
            pushed=True,
            previous_remote_head=remote_head,
        )

    async def _remote_head(self, url: str, ref: str, cwd: Path, auth: TokenHelper) -> str | None:
        result = await run_git(
            "ls-remote", url, ref, cwd=cwd, env=auth.env, started=auth.started, timeout=120
        )
        if result.returncode != 0:
            raise _git_remote_error(f"reading {ref} of {url}", result.stderr or result.stdout)
        for line in result.stdout.splitlines():
            sha, _, name = line.partition("\t")
            if name == ref:
                return sha
        return None

    @activity.defn(name="github_pull_request")
    async def pull_request(self, request: PullRequestRequest) -> PullRequestRef:
        """The open pull request for the branch, found or created; its body brought up to date."""
        owner = request.repo.split("/", 1)[0]
        head = f"{owner}:{request.branch}"
        body = truncate_body(request.body, f"'coord report {request.execution_id}' has it all")

        def find(gh: Github) -> Any:
            pulls = gh.get_repo(request.repo).get_pulls(state="open", head=head)
            return next((pr for pr in pulls if pr.head.ref == request.branch), None)

        def work(gh: Github) -> PullRequestRef:
            pr = find(gh)
            created = False
            if pr is None:
                try:
                    pr = gh.get_repo(request.repo).create_pull(
                        base=request.base,
                        head=request.branch,
                        title=request.title,
                        body=body,
                        draft=request.draft,
                    )
                    created = True
                except GithubException as err:
                    # Someone (an earlier attempt whose answer got lost) was faster.
                    if err.status != 422 or "already exists" not in _message(err):
                        raise
                    pr = find(gh)
                    if pr is None:
                        raise
            if not created and (pr.body or "") != body:
                pr.edit(body=body)
            return PullRequestRef(
                number=pr.number, url=pr.html_url, draft=bool(pr.draft), created=created
            )

        ref = await self._call(f"opening the pull request for {head} in {request.repo}", work)
        activity.logger.info(
            "pull request #%d %s (%s)", ref.number, "created" if ref.created else "updated", ref.url
        )
        return ref

    @activity.defn(name="github_tick_issue")
    async def tick_issue(self, request: TickRequest) -> TickResult:
        """Tick the issue's `- [ ]` lines of finished tasks; every other byte stays."""
        tasks = [TaskLine(id=t.id, title=t.title, text=t.checkbox) for t in request.tasks]

        def work(gh: Github) -> TickResult:
            # Read right before writing: a human may have edited the issue a moment ago.
            issue = gh.get_repo(request.repo).get_issue(request.issue)
            outcome = tick_checkboxes(issue.body or "", tasks)
            if outcome.changed:
                issue.edit(body=outcome.body)
            return TickResult(
                ticked=outcome.ticked,
                already_ticked=outcome.already_ticked,
                not_found=outcome.not_found,
            )

        return await self._call(
            f"ticking the checkboxes of issue #{request.issue} in {request.repo}", work
        )

    @activity.defn(name="github_status_comment")
    async def status_comment(self, request: StatusCommentRequest) -> CommentRef:
        """The execution's one status comment, found by its marker and edited in place."""
        marker = status_marker(request.execution_id)
        body = f"{marker}\n" + truncate_body(request.body, "see the Temporal UI")

        def work(gh: Github) -> CommentRef:
            issue = gh.get_repo(request.repo).get_issue(request.number)
            mine = next(
                (c for c in issue.get_comments() if (c.body or "").startswith(marker)), None
            )
            if mine is None:
                created = issue.create_comment(body)
                return CommentRef(id=created.id, url=created.html_url, created=True)
            if mine.body != body:
                mine.edit(body)
                return CommentRef(id=mine.id, url=mine.html_url, updated=True)
            return CommentRef(id=mine.id, url=mine.html_url)

        return await self._call(
            f"writing the status comment on #{request.number} in {request.repo}", work
        )

    @activity.defn(name="github_review")
    async def review(self, request: ReviewRequest) -> ReviewRef:
        """The reviewer's verdict as a pull request review, once per execution: "changes
        requested" requests changes, anything else comments. GitHub lets nobody request
        changes on their own pull request, so then it comments instead."""
        marker = review_marker(request.execution_id)
        body = f"{marker}\n" + truncate_body(request.body, "see the execution report")
        event = "REQUEST_CHANGES" if request.verdict == "changes_requested" else "COMMENT"

        def work(gh: Github) -> ReviewRef:
            pr = gh.get_repo(request.repo).get_pull(request.number)
            for review in pr.get_reviews():
                if (review.body or "").startswith(marker):
                    return ReviewRef(id=review.id, event=review.state or event)
            try:
                posted = pr.create_review(body=body, event=event)
            except GithubException as err:
                if err.status != 422 or event == "COMMENT" or "own pull" not in _message(err):
                    raise
                posted = pr.create_review(body=body, event="COMMENT")
            return ReviewRef(id=posted.id, event=posted.state or event, created=True)

        return await self._call(
            f"posting the review on pull request #{request.number} in {request.repo}", work
        )


async def _contains(ws: Path, head: str, remote_head: str) -> bool:
    """Whether our branch already contains the remote's head (a plain fast-forward)."""
    known = await run_git("cat-file", "-e", f"{remote_head}^{{commit}}", cwd=ws)
    if known.returncode != 0:
        return False  # a commit we never had: someone else pushed it
    ancestor = await run_git("merge-base", "--is-ancestor", remote_head, head, cwd=ws)
    return ancestor.returncode == 0


def _moved(request: PushRequest, url: str, remote_head: str, head: str) -> ApplicationError:
    return ApplicationError(
        f"the remote branch {request.branch} at {url} moved: it is at {remote_head[:12]}, "
        f"which the execution branch ({head[:12]}) does not contain. Not overwritten: "
        "merge or delete the remote branch, or set handoff.github.force_push: true, then "
        "retry",
        type="RemoteBranchMoved",
        non_retryable=True,
    )


def _push_failure(
    request: PushRequest, url: str, remote_head: str | None, head: str, output: str
) -> ApplicationError:
    lower = output.lower()
    if any(sign in lower for sign in _MOVED):
        return _moved(request, url, remote_head or "(unknown)", head)
    return _git_remote_error(f"pushing {request.branch} to {url}", output)


def _git_remote_error(what: str, output: str) -> ApplicationError:
    tail = output.strip()[-1500:]
    if any(sign in output.lower() for sign in _DENIED):
        return ApplicationError(
            f"git was refused {what}: {tail}. Check {TOKEN_ENV} on the worker: it must be "
            f"allowed to push ({SCOPES})",
            type="GitPushDenied",
            non_retryable=True,
        )
    return ApplicationError(f"git failed {what}: {tail}", type="GitRemoteFailed")
