"""What a push to GitHub learns from git: whether our branch contains the remote's head, and
git's refusals as errors that say what to fix (a moved remote branch, a denied token)."""

from __future__ import annotations

from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.git import run_git
from activities.github_client import SCOPES, TOKEN_ENV
from coordinator.handoff import (
    PushRequest,
)

MOVED_SIGNS = ("[rejected]", "non-fast-forward", "fetch first", "stale info")
DENIED_SIGNS = (
    "authentication failed",
    "could not read username",
    "permission to",
    "returned error: 401",
    "returned error: 403",
    "returned error: 404",
    "repository not found",
)


async def contains(ws: Path, head: str, remote_head: str) -> bool:
    """Whether our branch already contains the remote's head (a plain fast-forward)."""
    known = await run_git("cat-file", "-e", f"{remote_head}^{{commit}}", cwd=ws)
    if known.returncode != 0:
        return False  # a commit we never had: someone else pushed it
    ancestor = await run_git("merge-base", "--is-ancestor", remote_head, head, cwd=ws)
    return ancestor.returncode == 0


def moved_error(request: PushRequest, url: str, remote_head: str, head: str) -> ApplicationError:
    return ApplicationError(
        f"the remote branch {request.branch} at {url} moved: it is at {remote_head[:12]}, "
        f"which the execution branch ({head[:12]}) does not contain. Not overwritten: "
        "merge or delete the remote branch, or set handoff.github.force_push: true, then "
        "retry",
        type="RemoteBranchMoved",
        non_retryable=True,
    )


def push_failure(
    request: PushRequest, url: str, remote_head: str | None, head: str, output: str
) -> ApplicationError:
    lower = output.lower()
    if any(sign in lower for sign in MOVED_SIGNS):
        return moved_error(request, url, remote_head or "(unknown)", head)
    return git_remote_error(f"pushing {request.branch} to {url}", output)


def git_remote_error(what: str, output: str) -> ApplicationError:
    tail = output.strip()[-1500:]
    if any(sign in output.lower() for sign in DENIED_SIGNS):
        return ApplicationError(
            f"git was refused {what}: {tail}. Check {TOKEN_ENV} on the worker: it must be "
            f"allowed to push ({SCOPES})",
            type="GitPushDenied",
            non_retryable=True,
        )
    return ApplicationError(f"git failed {what}: {tail}", type="GitRemoteFailed")
