"""Talking to GitHub's API: the PyGithub client without its own retries, and every failure
classified for Temporal (bad credentials, a missing repository or permission: not retryable,
with what to fix; a rate limit: retry after its reset; 5xx and connection errors: retry).
Also the CLI's read of an issue (`fetch_issue`), which retries reads itself."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar
from urllib.parse import urlsplit

import requests
from github import Auth, Github, GithubException
from temporalio.exceptions import ApplicationError
from urllib3.util import Retry

from coordinator.handoff import (
    DEFAULT_API_URL,
    MAX_BODY_CHARS,
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


def error_message(err: GithubException) -> str:
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
        status, message = err.status, error_message(err)
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
