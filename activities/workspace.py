"""Workspace activities: the execution's own clone of the repository and its branch."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.git import GitError, git, is_git_repo, is_repository
from activities.heartbeat import heartbeating
from activities.home import choose_home, contains, fetch_from_home
from coordinator.execution import PrepareWorkspaceInput
from coordinator.hosts import HostSettings
from coordinator.plan import is_clone_url
from coordinator.report import Workspace


class WorkspaceActivities:
    def __init__(self, workspace_root: Path, host: HostSettings | None = None) -> None:
        self.workspace_root = workspace_root
        # Without it (tests of the activity alone) the workspace has no host queue and no
        # home: its steps run on the shared queue, as before host queues.
        self.host = host

    @activity.defn(name="prepare_workspace")
    async def prepare_workspace(self, request: PrepareWorkspaceInput) -> Workspace:
        """Clone the repository into the worker's workspace root and cut the execution branch;
        publish it to its home and say which host queue reaches this clone.

        Safe to repeat: a retry after a crash finds the clone and the branch and reuses them.
        With `resume_head` (re-homing) the branch comes from its home instead, with every task
        merged so far.
        """
        root = self.workspace_root.resolve()
        dest = (root / request.execution_id / "repo").resolve()
        if not dest.is_relative_to(root):
            # Execution ids are checked by `coord run`; this guards everything else we delete.
            raise ApplicationError(
                f"execution id '{request.execution_id}' would leave the workspace root {root}",
                type="InvalidExecutionId",
                non_retryable=True,
            )
        async with heartbeating(str(dest)):
            try:
                return await self._prepare(request, dest)
            except GitError as err:
                # A git failure on input we were given (missing branch, bad URL) will not
                # fix itself on retry.
                raise ApplicationError(str(err), type="GitError", non_retryable=True) from err

    async def _prepare(self, request: PrepareWorkspaceInput, dest: Path) -> Workspace:
        source = request.repository
        if not is_clone_url(source) and not Path(source).is_dir():
            raise ApplicationError(
                f"repository {source} does not exist or is not a folder on this worker",
                type="RepositoryMissing",
                non_retryable=True,
            )
        if not await is_git_repo(dest):
            if dest.exists():
                shutil.rmtree(dest)  # a clone cut short by a crash
            dest.parent.mkdir(parents=True, exist_ok=True)
            if is_clone_url(source) or await is_repository(Path(source)):
                activity.logger.info("cloning %s into %s", source, dest)
                await git("clone", "--quiet", "--no-hardlinks", source, str(dest), timeout=1800)
            else:
                await _import_folder(Path(source), dest, request.base_branch or "main")

        base_branch = request.base_branch or await _source_head_branch(dest)
        try:
            base_commit = await git("rev-parse", "--verify", f"{base_branch}^{{commit}}", cwd=dest)
        except GitError:
            try:
                base_commit = await git(
                    "rev-parse", "--verify", f"origin/{base_branch}^{{commit}}", cwd=dest
                )
            except GitError as err:
                raise ApplicationError(
                    f"base branch '{base_branch}' does not exist in {source}",
                    type="BaseBranchMissing",
                    non_retryable=True,
                ) from err

        if request.resume_head is not None:
            await _resume(request, dest)
        elif await git("branch", "--list", request.branch, cwd=dest):
            await git("checkout", "--quiet", request.branch, cwd=dest)
        else:
            await git("checkout", "--quiet", "-b", request.branch, base_commit, cwd=dest)
        head = await git("rev-parse", "HEAD", cwd=dest)
        host, home = self.host, request.home
        if host is not None and home is None:
            home = await choose_home(dest, request, host)
        return Workspace(
            path=str(dest),
            branch=request.branch,
            base_branch=base_branch,
            base_commit=base_commit,
            head_commit=head,
            execution_id=request.execution_id,
            repository=source,
            host_queue=host.host_queue if host else None,
            home=home,
            host_grace_s=host.grace_s if host else None,
        )


async def _resume(request: PrepareWorkspaceInput, dest: Path) -> None:
    """Check the execution branch out as its home has it: everything merged on the lost host."""
    assert request.resume_head is not None
    tip = await fetch_from_home(dest, request.branch, request.home) if request.home else None
    tip = tip or request.resume_head  # never published: nothing merged to take along
    if not await contains(dest, request.resume_head, tip):
        raise ApplicationError(
            f"cannot re-home execution {request.execution_id}: its branch {request.branch} "
            f"in {request.home} is at {tip[:12]}, which lacks {request.resume_head[:12]}: "
            "it is not this execution's branch",
            type="HomeBehind",
            non_retryable=True,
        )
    # Forced: a clone left on this host by an earlier stay may be behind or have leftovers.
    await git("checkout", "--quiet", "--force", "-B", request.branch, tip, cwd=dest)


async def _import_folder(source: Path, dest: Path, branch: str) -> None:
    """A plain folder becomes a new repository in the workspace; the user's folder is untouched."""
    activity.logger.info("importing folder %s into a new repository %s", source, dest)
    await asyncio.to_thread(shutil.copytree, source, dest, symlinks=True)
    await git("init", "--quiet", "-b", branch, cwd=dest)
    await git("add", "-A", cwd=dest)
    await git(
        "commit", "--quiet", "--allow-empty", "-m", "coord: import of " + source.name, cwd=dest
    )


async def _source_head_branch(clone: Path) -> str:
    """What `base_branch` defaults to: the branch the source repository has checked out."""
    try:
        ref = await git("symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD", cwd=clone)
    except GitError:
        return await git("symbolic-ref", "--quiet", "--short", "HEAD", cwd=clone)  # imported
    return ref.removeprefix("origin/")
