"""The execution branch's home: where it is pushed after setup and after every merge, so that
a worker taking over from a lost host gets every finished task back (coordinator/hosts.py).
The user's remote is a home only for plans that ask no approval; otherwise the branch stays in
the coordinator's shared root until the handoff."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.git import GitError, git, run_git
from activities.git_objects import resolve
from activities.heartbeat import heartbeating
from activities.home_copy import push_to_local_home
from coordinator.branches import PublishRequest, PublishResult
from coordinator.execution import PrepareWorkspaceInput
from coordinator.hosts import HostSettings, shared_home
from coordinator.plan import is_clone_url

HOME_REF_PREFIX = "refs/coord-home/"
COMMIT_MISSING = "CommitMissing"


async def choose_home(clone: Path, request: PrepareWorkspaceInput, host: HostSettings) -> str:
    """The repository's remote when it is a URL this worker may push to and the plan asks no
    approval (`remote_home`), else the shared bare repository: the coordinator's own storage,
    so nothing reaches the user's remote before a human has approved. The remote is probed
    by pushing the new branch: no credentials, no remote."""
    source, execution_id, branch = request.repository, request.execution_id, request.branch
    if host.publish_to_remote and request.remote_home and is_clone_url(source):
        try:
            await publish(clone, branch, source)
            return source
        except GitError as err:
            activity.logger.warning(
                "cannot push %s to %s (%s); its home is the shared root instead",
                branch,
                source,
                err.output.strip()[-300:],
            )
    home = shared_home(host.shared_root, execution_id)
    # An earlier execution of the same id may have left its branch there: this one owns it.
    await publish(clone, branch, str(home), force=True)
    return str(home)


async def publish(clone: Path, branch: str, home: str, *, force: bool = False) -> None:
    """Push the execution branch to its home; a fast-forward (merges only ever add)."""
    if not is_clone_url(home):
        bare = Path(home)
        if not (bare / "HEAD").is_file():
            bare.parent.mkdir(parents=True, exist_ok=True)
            await git("init", "--quiet", "--bare", str(bare))
    refspec = f"{'+' if force else ''}refs/heads/{branch}:refs/heads/{branch}"
    await git("push", "--quiet", "--no-verify", home, refspec, cwd=clone, timeout=600)


@activity.defn(name="publish_branch")
async def publish_branch(request: PublishRequest) -> PublishResult:
    """Push the execution branch, with `commit` on it, to its home. Runs after each merge,
    outside the merge lock: parallel tasks do not wait for each other's pushes, and a push
    that lost the race to a later head is fine when that head contains `commit`."""
    async with heartbeating(f"publish {request.branch}"):
        head = await publish_commit(
            Path(request.workspace), request.branch, request.home, request.commit
        )
    return PublishResult(head=head)


async def publish_commit(clone: Path, branch: str, home: str, commit: str) -> str:
    """`publish_branch`'s work (also part of landing a task, activities/worktree_land.py):
    the branch's head in its home afterwards, `commit` or a later head. A home that is a bare
    repository on this machine gets it in-process (activities/home_copy.py), else by push."""
    if resolve(clone, f"{commit}^{{commit}}") is None:
        raise ApplicationError(
            f"commit {commit[:12]} is not in {clone}: it was merged on another worker's clone",
            type=COMMIT_MISSING,
            non_retryable=True,
        )
    if not is_clone_url(home):
        # In a thread: a big change's objects would hold up the worker's other activities.
        head = await asyncio.to_thread(push_to_local_home, clone, Path(home), branch, commit)
        if head is not None:
            return head
    try:
        await publish(clone, branch, home)
    except GitError as err:
        tip = await fetch_from_home(clone, branch, home)
        if tip is None or not await contains(clone, commit, tip):
            # The network or a busy filesystem: worth a retry.
            raise ApplicationError(
                f"could not push the execution branch {branch} to its home {home}: {err}",
                type="PublishFailed",
            ) from err
        return tip
    return commit


async def fetch_from_home(clone: Path, branch: str, home: str) -> str | None:
    """The branch as its home has it (fetched into the clone), or None when it has none."""
    if not is_clone_url(home) and not (Path(home) / "HEAD").is_file():
        return None
    listed = await git("ls-remote", "--heads", home, f"refs/heads/{branch}", cwd=clone)
    if not listed:
        return None
    local = f"{HOME_REF_PREFIX}{branch}"
    await git("fetch", "--quiet", "--no-tags", home, f"+refs/heads/{branch}:{local}", cwd=clone)
    return await git("rev-parse", "--verify", f"{local}^{{commit}}", cwd=clone)


async def contains(clone: Path, commit: str, head: str) -> bool:
    result = await run_git("merge-base", "--is-ancestor", commit, head, cwd=clone)
    return result.returncode == 0
