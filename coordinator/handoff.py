"""The GitHub handoff's boundary models: what the workflows ask the GitHub activities, what
they answer, and what the progress and the report say about it.

No secrets here, ever: the token stays in the worker's environment (`GITHUB_TOKEN`) and the
activities read it there; these models only say whether one was present.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

# GitHub refuses bodies over 65,536 characters; leave room for the truncation note.
MAX_BODY_CHARS = 65_000
DEFAULT_API_URL = "https://api.github.com"


def status_marker(execution_id: str) -> str:
    """The hidden first line that finds an execution's status comment again."""
    return f"<!-- coord:{execution_id} -->"


def review_marker(execution_id: str) -> str:
    return f"<!-- coord-review:{execution_id} -->"


class GithubAccessRequest(BaseModel):
    repo: str


class GithubAccess(BaseModel):
    """Whether this worker can hand off to GitHub: a token is present (its value never leaves
    the worker) and where the API is."""

    enabled: bool
    reason: str = ""  # why not, when not
    api_url: str = DEFAULT_API_URL


class PushRequest(BaseModel):
    execution_id: str
    repo: str  # owner/name: the remote is the repository's clone URL, as the API gives it
    workspace: str
    branch: str
    force: bool = False  # with a lease on the remote head seen just before


class PushResult(BaseModel):
    remote_url: str  # without credentials
    branch: str
    head: str
    pushed: bool  # False: the remote branch was already at `head`
    previous_remote_head: str | None = None


class PullRequestRequest(BaseModel):
    execution_id: str
    repo: str
    branch: str  # the head branch, in the same repository
    base: str
    title: str
    body: str
    draft: bool = True


class PullRequestRef(BaseModel):
    number: int
    url: str  # html_url: for people
    draft: bool = False
    created: bool = False  # by this call; False when found and updated


class TaskRef(BaseModel):
    id: str
    title: str
    checkbox: str | None = None  # the exact item text in the issue, when the plan came from it


class TickRequest(BaseModel):
    repo: str
    issue: int
    tasks: list[TaskRef]  # the finished ones


class TickResult(BaseModel):
    ticked: list[str] = Field(default_factory=list)
    already_ticked: list[str] = Field(default_factory=list)
    not_found: list[str] = Field(default_factory=list)


class StatusCommentRequest(BaseModel):
    repo: str
    number: int  # the issue, or the pull request when the plan links no issue
    execution_id: str
    body: str  # without the marker: the activity puts it on the first line


class CommentRef(BaseModel):
    id: int
    url: str
    created: bool = False
    updated: bool = False


Verdict = Literal["approve", "changes_requested", "skipped"]


class ReviewRequest(BaseModel):
    repo: str
    number: int
    execution_id: str
    verdict: Verdict
    body: str


class ReviewRef(BaseModel):
    id: int
    event: str  # COMMENT or REQUEST_CHANGES
    created: bool = False


class WebhookRequest(BaseModel):
    execution_id: str
    url: str | None = None  # from the plan
    url_env: str | None = None  # or the name of the worker's environment variable holding it
    payload: dict[str, object]


class WebhookResult(BaseModel):
    delivered: bool
    status: int | None = None
    detail: str = ""


class GithubPhaseInput(BaseModel):
    """What the integration and review phases need for the handoff (PhaseInput.github)."""

    repo: str
    issue: int | None = None
    draft: bool = True
    force_push: bool = False
    title: str
    body: str = ""  # the pull request's body: the report as it stands
    finished: list[TaskRef] = Field(default_factory=list)  # tasks whose boxes get ticked
    pull_request: PullRequestRef | None = None  # once the integration phase has one
    pushed_head: str | None = None


class GithubHandoffResult(BaseModel):
    """What the integration phase handed off (IntegrationResult.github)."""

    push: PushResult | None = None
    pull_request: PullRequestRef | None = None
    tick: TickResult | None = None
    skipped_reason: str = ""  # a human chose to keep the handoff local after a failure
    aborted: bool = False


class HandoffState(BaseModel):
    """The handoff as the progress and the report show it."""

    repo: str
    issue: int | None = None
    enabled: bool = False
    skipped_reason: str = ""
    branch: str | None = None
    pushed_head: str | None = None
    pull_request: PullRequestRef | None = None
    ticked: list[str] = Field(default_factory=list)
    status_comment_url: str | None = None
    review_event: str | None = None
    # The newest comment on the issue or pull request the execution has read for answers
    # (`/coord ...`, workflows/comment_answers.py); None: not read yet.
    comments_read_to: int | None = None
