"""The scratch execution the worktree activity tests work in (tests/activities/test_worktrees.py,
tests/activities/test_worktree_land.py): a repository, its clone, the activities on it."""

from __future__ import annotations

import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from temporalio.testing import ActivityEnvironment

from activities.workspace import WorkspaceActivities
from activities.worktree_spares import SPARE
from activities.worktrees import WorktreeActivities
from coordinator.branches import (
    CommitRequest,
    CommitResult,
    CreateWorktreeRequest,
    LandRequest,
    MergeRequest,
    MergeResult,
    RemoveWorktreeRequest,
    TaskWorktree,
    task_branch,
)
from coordinator.execution import PrepareWorkspaceInput
from coordinator.progress import PlanTickRequest
from coordinator.report import Workspace

R = TypeVar("R")
EXECUTION = "e1"
BRANCH = "coord/e1"


def git(cwd: Path | str, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


async def run(fn: Callable[[Any], Awaitable[R]], request: Any) -> R:
    # One environment per call, so parallel calls do not share activity context.
    return await ActivityEnvironment().run(fn, request)


@dataclass
class Execution:
    root: Path
    workspace: Workspace
    acts: WorktreeActivities

    @property
    def clone(self) -> Path:
        return Path(self.workspace.path)

    def head(self) -> str:
        return git(self.clone, "rev-parse", BRANCH)

    def subjects(self) -> list[str]:
        """The execution branch's commits since the base, oldest first."""
        log = git(self.clone, "log", "--reverse", "--format=%s", f"{self.workspace.base_commit}..")
        return log.splitlines()

    async def create(self, task_id: str, attempt: int = 1, fresh: bool = False) -> TaskWorktree:
        return await run(
            self.acts.create_task_worktree,
            CreateWorktreeRequest(
                execution_id=EXECUTION,
                workspace=str(self.clone),
                execution_branch=BRANCH,
                task_id=task_id,
                attempt=attempt,
                fresh=fresh,
            ),
        )

    async def commit(self, wt: TaskWorktree, task_id: str, attempt: int = 1) -> CommitResult:
        return await run(
            self.acts.commit_task,
            CommitRequest(worktree=wt.path, task_id=task_id, title=title(task_id), attempt=attempt),
        )

    async def merge(self, task_id: str) -> MergeResult:
        return await run(self.acts.merge_task, merge_request(self, task_id))

    async def remove(self, task_id: str, delete_branch: bool = True) -> None:
        await run(
            self.acts.remove_task_worktree,
            RemoveWorktreeRequest(
                workspace=str(self.clone),
                execution_id=EXECUTION,
                task_id=task_id,
                delete_branch=delete_branch,
            ),
        )

    async def land(self, task_id: str, files: dict[str, str]) -> MergeResult:
        """A whole successful task: worktree, edits, commit, merge."""
        wt = await self.create(task_id)
        write(wt, files)
        await self.commit(wt, task_id)
        result = await self.merge(task_id)
        assert result.merged, result.conflict
        return result


def landing(ex: Execution, wt: TaskWorktree, task_id: str, home: str | None = None) -> LandRequest:
    """The request that lands the task's worktree (`land_task`)."""
    return LandRequest(
        worktree=wt.path,
        base_commit=wt.base_commit,
        merge=merge_request(ex, task_id),
        home=home,
        execution_id=EXECUTION,
    )


def merge_request(ex: Execution, task_id: str, tick: PlanTickRequest | None = None) -> MergeRequest:
    """The merge of the task's branch onto the execution branch (`merge_task`)."""
    return MergeRequest(
        workspace=str(ex.clone),
        execution_branch=BRANCH,
        task_branch=task_branch(EXECUTION, task_id),
        task_id=task_id,
        title=title(task_id),
        tick=tick,
    )


def title(task_id: str) -> str:
    return f"do {task_id}"


def write(wt: TaskWorktree, files: dict[str, str]) -> None:
    for name, text in files.items():
        (Path(wt.path) / name).parent.mkdir(parents=True, exist_ok=True)
        (Path(wt.path) / name).write_text(text)


def assert_clean(repo: Path | str) -> None:
    """Nothing uncommitted and no rebase, merge or cherry-pick in progress."""
    assert git(repo, "status", "--porcelain") == ""
    git_dir = Path(git(repo, "rev-parse", "--absolute-git-dir"))
    for state in ("rebase-merge", "rebase-apply", "MERGE_HEAD", "CHERRY_PICK_HEAD"):
        assert not (git_dir / state).exists(), state


def listed_worktrees(ex: Execution) -> list[tuple[Path, str]]:
    """(path, lock reason) of each worktree git lists besides the clone."""
    listed: list[tuple[Path, str]] = []
    for line in git(ex.clone, "worktree", "list", "--porcelain").splitlines():
        key, _, value = line.partition(" ")
        if key == "worktree":
            listed.append((Path(value), ""))
        elif key == "locked":
            listed[-1] = (listed[-1][0], value)
    return listed[1:]


def task_worktrees(ex: Execution) -> list[Path]:
    """The worktrees git lists that are not spares (activities/worktree_spares.py)."""
    return [path for path, locked in listed_worktrees(ex) if locked != SPARE]


def spare_worktrees(ex: Execution) -> list[Path]:
    """The spares git lists, each in the execution's spares folder."""
    spares = [path for path, locked in listed_worktrees(ex) if locked == SPARE]
    assert all(path.parent.name == "spare-worktrees" and path.is_dir() for path in spares)
    return spares


# What the scratch repository holds unless a test says otherwise.
FILES = {"app.py": "print('hi')\n", "shared.txt": "one\ntwo\nthree\n", ".gitignore": "*.log\n"}


async def scratch_execution(tmp_path: Path, files: dict[str, str] | None = None) -> Execution:
    """A repository of `files` (FILES), its clone prepared as an execution's workspace."""
    source = tmp_path / "src"
    for name, text in (FILES if files is None else files).items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    git(source, "init", "-q", "-b", "main")
    git(source, "add", "-A")
    git(source, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    root = tmp_path / "ws"
    workspace = await run(
        WorkspaceActivities(root).prepare_workspace,
        PrepareWorkspaceInput(
            execution_id=EXECUTION, repository=str(source), base_branch=None, branch=BRANCH
        ),
    )
    return Execution(root, workspace, WorktreeActivities(root))
