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
and connection errors retry (activities/github_client.py); git's refusals of a push are read
in activities/github_push.py.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests
from github import Github, GithubException
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.git import GitError, git, run_git
from activities.git_auth import TokenHelper, borrowing_repository, token_helper
from activities.github_client import (
    API_URL_ENV,
    PUSH_TIMEOUT_S,
    TOKEN_ENV,
    T,
    classify,
    error_message,
    make_client,
    truncate_body,
)
from activities.github_client import GithubReadError as GithubReadError
from activities.github_client import fetch_issue as fetch_issue
from activities.github_push import contains, git_remote_error, moved_error, push_failure
from activities.heartbeat import heartbeating
from coordinator.checkboxes import TaskLine, tick_checkboxes
from coordinator.handoff import (
    DEFAULT_API_URL,
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
                if remote_head and not request.force and not await contains(ws, head, remote_head):
                    raise moved_error(request, clone_url, remote_head, head)
                args = ["push", "--porcelain", clone_url, f"{head}:{ref}"]
                if request.force:
                    args.insert(1, f"--force-with-lease={ref}:{remote_head or ''}")
                result = await run_git(
                    *args, cwd=scratch, env=auth.env, started=auth.started, timeout=PUSH_TIMEOUT_S
                )
            if result.returncode != 0:
                output = f"{result.stdout}\n{result.stderr}".strip()
                raise push_failure(request, clone_url, remote_head, head, output)
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
            raise git_remote_error(f"reading {ref} of {url}", result.stderr or result.stdout)
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
                    if err.status != 422 or "already exists" not in error_message(err):
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
                if err.status != 422 or event == "COMMENT" or "own pull" not in error_message(err):
                    raise
                posted = pr.create_review(body=body, event="COMMENT")
            return ReviewRef(id=posted.id, event=posted.state or event, created=True)

        return await self._call(
            f"posting the review on pull request #{request.number} in {request.repo}", work
        )
