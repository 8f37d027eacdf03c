"""Task worktrees: every task works on its own branch and lands as exactly one commit.

How a task's commit reaches the execution branch: it is cherry-picked onto the execution
head *in memory* (`git merge-tree --write-tree`, a three-way merge whose merge base is the
task's base, since the task branch is one commit on a base the execution branch has moved
past), committed with `commit-tree`, and the execution branch is fast-forwarded to it (or
straight to the task's own commit when nothing landed meanwhile). History stays linear with
one commit per task, and nothing is ever "in progress": a conflict touches no working tree
and leaves nothing to abort, and a crash leaves the branch at either the old or the new head.

Every activity can be retried after a crash at any point: the `Coord-Task: <id>` trailer and
the recorded base ref let a retry find work already done instead of doing it twice. Git plumbing
(`commit-tree`, `update-ref`) is used for commits so no editor runs; no hook ever does
(activities/git.py switches them off for every git the coordinator runs).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.conflicts import (
    Merged,
    conflict_facts,
    forget_conflicts,
    markers_added,
    markers_left,
    record_conflict,
)
from activities.git import (
    GitError,
    git,
    is_git_repo,
    lock_in_the_way,
    remove_stale_lock,
    repo_lock,
    run_git,
)
from activities.heartbeat import heartbeating
from activities.plan_ticks import Ticked, tick_tree
from coordinator.branches import (
    MAX_DIFF_FILES,
    MAX_STAT_BYTES,
    TASK_BRANCH_PREFIX,
    TASK_TRAILER,
    CommitRequest,
    CommitResult,
    CreateWorktreeRequest,
    DiffRequest,
    DiffSummary,
    MergeRequest,
    MergeResult,
    PendingWorkRequest,
    PendingWorkResult,
    RemoveWorktreeRequest,
    TaskWorktree,
    artifacts_dir,
    base_ref,
    task_branch,
    task_commit_message,
    task_worktree_path,
)
from coordinator.conflicts import describe

T = TypeVar("T")

# Checkouts and `add -A` of a big repository can take a while; heartbeats cover the wait.
LONG = 1800.0
# How long a git command waits for a lock another live git holds before giving up (retryably).
LOCK_WAITS, LOCK_WAIT = 20, 0.5
# Tool caches that gates create in a worktree as a side effect; never part of a task's commit
# even when the repository's .gitignore forgets them.
TOOL_CACHES = ("__pycache__/", "*.py[cod]", ".pytest_cache/", ".mypy_cache/", ".ruff_cache/")
REPLAY_SNAPSHOT = "coord: snapshot of the task before replaying it"
REPLAY_RECORD = "coord-replay.json"
UNFINISHED_TRAILER = "Coord-Unfinished"
TASK_BRANCH_MISSING = "TaskBranchMissing"


class WorktreeActivities:
    def __init__(self, workspace_root: Path) -> None:
        self.workspace_root = workspace_root

    @activity.defn(name="create_task_worktree")
    async def create_task_worktree(self, request: CreateWorktreeRequest) -> TaskWorktree:
        """The task's worktree on its task branch, cut from the execution branch.

        A missing worktree is created from the execution head. An existing one is reused with
        its uncommitted work (the fix loop works on top of the failed attempt), unless `fresh`
        resets it to the execution head. On a later attempt, a task commit that exists although
        the execution head moved means its merge conflicted: it is replayed onto the execution
        head as uncommitted changes with conflict markers, so the fixer resolves them in place
        (the conflicted files are recorded: activities/conflicts.py).
        """
        clone = Path(request.workspace)
        path = self._worktree_path(request.execution_id, request.task_id)
        branch = task_branch(request.execution_id, request.task_id)
        async with heartbeating(f"worktree for {request.task_id}"):
            with _git_errors():
                if (await run_git("check-ref-format", f"refs/heads/{branch}")).returncode:
                    raise ApplicationError(
                        f"task id '{request.task_id}' cannot be part of a git branch name",
                        type="BadTaskId",
                        non_retryable=True,
                    )
                async with repo_lock(clone):
                    return await _create(clone, path, branch, request)

    @activity.defn(name="commit_task")
    async def commit_task(self, request: CommitRequest) -> CommitResult:
        """Everything in the worktree (minus ignored files) as the task's one commit on its base.

        A commit already on the branch (an earlier attempt, or the specialist's own commits)
        is replaced, so a task is always exactly one commit; a retry after the commit landed
        finds it and returns it unchanged. While a file of a conflict replayed into the
        worktree still holds conflict markers, nothing is committed: the result says where.
        """
        wt = Path(request.worktree)
        async with heartbeating(f"commit {request.task_id}"):
            with _git_errors():
                return await _commit(wt, request)

    @activity.defn(name="merge_task")
    async def merge_task(self, request: MergeRequest) -> MergeResult:
        """Land the task's commit on the execution branch; a conflict is a result, not an error."""
        clone = Path(request.workspace)
        async with heartbeating(f"merge {request.task_id}"):
            with _git_errors():
                # The workflow merges one task at a time; the lock holds even if it did not.
                async with repo_lock(clone):
                    return await _merge(clone, request)

    @activity.defn(name="remove_task_worktree")
    async def remove_task_worktree(self, request: RemoveWorktreeRequest) -> None:
        clone = Path(request.workspace)
        path = self._worktree_path(request.execution_id, request.task_id)
        branch = task_branch(request.execution_id, request.task_id)
        async with heartbeating(f"remove worktree of {request.task_id}"):
            with _git_errors():
                async with repo_lock(clone):
                    await _discard_worktree(clone, path)
                    if request.delete_branch:
                        await _delete_refs(clone, f"refs/heads/{branch}", base_ref(branch))

    @activity.defn(name="commit_pending_work")
    async def commit_pending_work(self, request: PendingWorkRequest) -> PendingWorkResult:
        """On cancel or abort: remove every task worktree of the execution.

        Finished tasks are merged already, so the execution branch holds all finished work.
        An unfinished task's changes are not merged (no gate passed them) but kept as a commit
        on its task branch for a human to look at; worktrees without changes go with their
        branches.
        """
        clone = Path(request.workspace)
        async with heartbeating(f"clean up worktrees of {request.execution_id}"):
            with _git_errors():
                async with repo_lock(clone):
                    return await self._pending(clone, request)

    @activity.defn(name="diff_from_base")
    async def diff_from_base(self, request: DiffRequest) -> DiffSummary:
        """The diff from the base as a patch file for the reviewer; a summary for history."""
        clone = Path(request.workspace)
        async with heartbeating(f"diff of {request.execution_id}"):
            with _git_errors():
                return await self._diff(clone, request)

    def _worktree_path(self, execution_id: str, task_id: str) -> Path:
        """Where a task's worktree lives; never outside the workspace root, as folders there
        get deleted."""
        path = task_worktree_path(self.workspace_root, execution_id, task_id)
        resolved = path.resolve()
        if (resolved.name, resolved.parent.parent.name) != (task_id, execution_id) or (
            resolved.parent.parent.parent != self.workspace_root.resolve()
        ):
            raise ApplicationError(
                f"execution '{execution_id}' / task '{task_id}' would leave the workspace root",
                type="BadTaskId",
                non_retryable=True,
            )
        return path

    async def _pending(self, clone: Path, request: PendingWorkRequest) -> PendingWorkResult:
        head = await _rev(clone, f"refs/heads/{request.execution_branch}")
        worktrees_dir = self._worktree_path(request.execution_id, "x").parent
        prefix = task_branch(request.execution_id, "")
        result = PendingWorkResult(head=head)
        for entry in await _worktrees(clone):
            branch = (entry.branch or "").removeprefix("refs/heads/")
            if not branch.startswith(prefix):
                if entry.path.parent != worktrees_dir.resolve():
                    continue  # not this execution's
                branch = task_branch(request.execution_id, entry.path.name)
            task_id = branch.removeprefix(prefix)
            if await _usable(entry) and await _keep_unfinished(entry.path, branch, task_id, head):
                result.unfinished_branches[task_id] = branch
            await _discard_worktree(clone, entry.path)
            result.removed_worktrees.append(task_id)
            if task_id not in result.unfinished_branches:
                await _delete_refs(clone, f"refs/heads/{branch}", base_ref(branch))
        if worktrees_dir.exists():  # folders of worktrees whose creation was cut short
            await asyncio.to_thread(shutil.rmtree, worktrees_dir, True)
        await _g("worktree", "prune", cwd=clone)
        return result

    async def _diff(self, clone: Path, request: DiffRequest) -> DiffSummary:
        head = await _rev(clone, request.head)
        base = await _rev(clone, request.base_commit)
        folder = artifacts_dir(self.workspace_root, request.execution_id)
        folder.mkdir(parents=True, exist_ok=True)
        patch = folder / f"diff-{head[:12]}.patch"
        partial = folder / f".{patch.name}.{os.getpid()}.tmp"
        # Written aside and renamed, so a crash never leaves a truncated patch to be trusted.
        diff = ("-c", "core.quotePath=false", "diff", "--no-color", "--no-ext-diff")
        await _g(*diff, "--no-textconv", f"--output={partial}", base, head, cwd=clone, timeout=LONG)
        partial.replace(patch)
        names = await _g(*diff, "--name-only", base, head, cwd=clone, timeout=LONG)
        files = names.splitlines()
        stat = await _g(*diff, "--stat=100", base, head, cwd=clone, timeout=LONG)
        return DiffSummary(
            files=files[:MAX_DIFF_FILES],
            total_files=len(files),
            stat=_clip_stat(stat),
            diff_path=str(patch),
            head=head,
        )


# --- creating and reusing a worktree -------------------------------------------------------


async def _create(
    clone: Path, path: Path, branch: str, request: CreateWorktreeRequest
) -> TaskWorktree:
    exec_head = await _rev(clone, f"refs/heads/{request.execution_branch}")
    bref = base_ref(branch)
    await _exclude_tool_caches(clone)
    entry = await _worktree_at(clone, path)
    if entry is not None and not await _usable(entry):
        entry = None  # an `add` cut short by a crash: start again
    if entry is None:
        await _discard_worktree(clone, path)
        keep_branch = (
            request.attempt > 1
            and not request.fresh
            and await _exists(clone, f"refs/heads/{branch}")
            and await _exists(clone, bref)
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        if keep_branch:  # removed but not deleted: the next attempt builds on the branch
            await _g("worktree", "add", "--quiet", str(path), branch, cwd=clone, timeout=LONG)
        else:
            await _g(
                *("worktree", "add", "--quiet", "--no-track", "-B", branch, str(path)),
                exec_head,
                cwd=clone,
                timeout=LONG,
            )
            await _g("update-ref", bref, exec_head, cwd=clone)
            return TaskWorktree(path=str(path), branch=branch, base_commit=exec_head)
    elif request.fresh:
        # -B also brings back a worktree whose HEAD a specialist moved to another branch.
        await _g("checkout", "--quiet", "--force", "-B", branch, exec_head, cwd=path, timeout=LONG)
        await _g("clean", "-ffdq", cwd=path, timeout=LONG)
        forget_conflicts(await _admin_dir(path))
        await _g("update-ref", bref, exec_head, cwd=clone)
        return TaskWorktree(path=str(path), branch=branch, base_commit=exec_head)
    if await _current_branch(path) != branch:
        raise ApplicationError(
            f"the worktree {path} is no longer on its task branch {branch} (did the specialist "
            "switch branches?); retry the task from scratch",
            type="WorktreeOffBranch",
            non_retryable=True,
        )
    base = await _base(clone, branch, request.execution_branch)
    head = await _rev(path, "HEAD")
    if request.attempt > 1 and head != base and base != exec_head:
        return await _uninterrupted(_replay(path, branch, base, exec_head, request))
    replayed = await _replay_record(path, request.attempt, base)
    if replayed is not None:  # a retry of the attempt that replayed: the same answer
        return replayed
    return TaskWorktree(path=str(path), branch=branch, base_commit=base)


async def _replay(
    wt: Path, branch: str, base: str, exec_head: str, request: CreateWorktreeRequest
) -> TaskWorktree:
    """Move the task's changes onto the execution head, uncommitted, markers where they clash.

    Each step can be redone after a crash: the snapshot commit is recognised and reused, and
    the outcome is recorded before the branch moves, so a retry answers the same.
    """
    head = snapshot = await _rev(wt, "HEAD")
    if await _g("log", "-1", "--format=%s", head, cwd=wt) != REPLAY_SNAPSHOT:
        await _g("add", "-A", cwd=wt, timeout=LONG)
        tree = await _g("write-tree", cwd=wt)
        snapshot = await _g("commit-tree", tree, "-p", base, "-m", REPLAY_SNAPSHOT, cwd=wt)
        await _g("update-ref", f"refs/heads/{branch}", snapshot, head, cwd=wt)
    # Branch names as arguments label the conflict markers for the fixer.
    merged = await _merge_tree(wt, request.execution_branch, branch)
    await _g("read-tree", "--reset", "-u", merged.tree, cwd=wt, timeout=LONG)
    admin = await _admin_dir(wt)
    conflict = None
    if merged.conflicts:
        facts = await conflict_facts(
            wt, merged, request.task_id, request.execution_branch, branch, base, exec_head
        )
        # Before the branch moves: from here on, git no longer knows of the conflict.
        await record_conflict(wt, admin, facts, exec_head, snapshot)
        conflict = describe(facts)
    result = TaskWorktree(
        path=str(wt),
        branch=branch,
        base_commit=exec_head,
        replayed=True,
        conflict_files=merged.conflict_files,
        conflict=conflict,
    )
    record = {"attempt": request.attempt, "worktree": result.model_dump()}
    (admin / REPLAY_RECORD).write_text(json.dumps(record))
    await _g(
        "update-ref",
        "--stdin",
        cwd=wt,
        stdin=f"update refs/heads/{branch} {exec_head}\nupdate {base_ref(branch)} {exec_head}\n",
    )
    await _g("reset", "--quiet", cwd=wt, timeout=LONG)  # the changes stay, unstaged
    return result


async def _replay_record(wt: Path, attempt: int, base: str) -> TaskWorktree | None:
    """What the replay of this very attempt returned, if it happened."""
    record = await _admin_dir(wt) / REPLAY_RECORD
    with suppress(FileNotFoundError, KeyError, TypeError, ValueError):  # none, or torn
        data = json.loads(record.read_text())
        found = TaskWorktree.model_validate(data["worktree"])
        if data["attempt"] == attempt and found.base_commit == base:
            return found
    return None


async def _admin_dir(wt: Path) -> Path:
    """The worktree's own git folder: private to it, gone when the worktree is removed."""
    return Path(await _g("rev-parse", "--absolute-git-dir", cwd=wt))


async def _exclude_tool_caches(clone: Path) -> None:
    common = await _g("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=clone)
    exclude = Path(common) / "info" / "exclude"
    text = exclude.read_text() if exclude.exists() else ""
    missing = [p for p in TOOL_CACHES if p not in text.splitlines()]
    if missing:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        prefix = "" if not text or text.endswith("\n") else "\n"
        lines = "\n".join(["# added by coord: caches gates leave behind", *missing])
        with exclude.open("a") as out:
            out.write(f"{prefix}{lines}\n")


# --- committing ----------------------------------------------------------------------------


async def _commit(wt: Path, request: CommitRequest) -> CommitResult:
    branch = await _current_branch(wt)
    if branch is None or not branch.startswith(TASK_BRANCH_PREFIX):
        raise ApplicationError(
            f"{wt} is not on a task branch (HEAD: {branch or 'detached'}); "
            "create it with create_task_worktree",
            type="NotATaskWorktree",
            non_retryable=True,
        )
    base = await _base(wt, branch, None)
    head = await _rev(wt, "HEAD")
    admin = await _admin_dir(wt)
    left, others = await markers_left(wt, admin)
    if left:  # nothing with conflict markers is committed, let alone merged
        return CommitResult(commit=None, unresolved=left, conflicting_with=others)
    await _g("add", "-A", cwd=wt, timeout=LONG)
    if moved := await markers_added(wt, admin, base):  # markers under another name
        _, others = await markers_left(wt, admin, everything=True)
        return CommitResult(commit=None, unresolved=moved, conflicting_with=others)
    tree = await _g("write-tree", cwd=wt)
    if tree == await _rev(wt, f"{base}^{{tree}}"):
        if head != base:  # the task undid its earlier commit: zero commits, not an empty one
            await _g("update-ref", f"refs/heads/{branch}", base, head, cwd=wt)
        return CommitResult(commit=None, no_changes=True)
    message = task_commit_message(request.task_id, request.title)
    if head != base and await _is_commit(wt, head, parent=base, tree=tree, message=message):
        commit = head  # a retry after the commit landed
    else:
        # A new commit on the base replaces (amends) any commit of an earlier attempt.
        commit = await _g("commit-tree", tree, "-p", base, "-F", "-", cwd=wt, stdin=message)
        await _uninterrupted(_g("update-ref", f"refs/heads/{branch}", commit, head, cwd=wt))
    files = await _g(
        *("-c", "core.quotePath=false", "diff-tree", "-r", "--name-only", "--no-commit-id"),
        base,
        commit,
        cwd=wt,
    )
    return CommitResult(commit=commit, files_changed=files.splitlines())


async def _keep_unfinished(wt: Path, branch: str, task_id: str, exec_head: str) -> bool:
    """Keep a cancelled task's changes as a commit on its branch; False when it has none
    or when it is finished (merged, its worktree merely not removed yet)."""
    recorded = await run_git("rev-parse", "--verify", "--quiet", base_ref(branch), cwd=wt)
    if recorded.returncode or await _current_branch(wt) != branch:
        return False
    base = recorded.stdout
    if await _find_task_commit(wt, base, exec_head, task_id) is not None:
        return False
    await _g("add", "-A", cwd=wt, timeout=LONG)
    tree = await _g("write-tree", cwd=wt)
    if tree == await _rev(wt, f"{base}^{{tree}}"):
        return False
    head = await _rev(wt, "HEAD")
    if await _rev(wt, "HEAD^{tree}") != tree:
        message = (
            f"{task_id}: unfinished work (cancelled before its gates passed)\n\n"
            f"{UNFINISHED_TRAILER}: {task_id}\n"
        )
        commit = await _g("commit-tree", tree, "-p", base, "-F", "-", cwd=wt, stdin=message)
        await _g("update-ref", f"refs/heads/{branch}", commit, head, cwd=wt)
    return True


# --- merging -------------------------------------------------------------------------------


async def _merge(clone: Path, request: MergeRequest) -> MergeResult:
    exec_ref = f"refs/heads/{request.execution_branch}"
    exec_head = await _rev(clone, exec_ref)
    if request.since is not None and not await _exists(clone, f"refs/heads/{request.task_branch}"):
        # The task worked on a host that is gone; its commit may have landed (and been
        # published) before it went, which is what this clone got back from the home.
        landed = await _find_task_commit(clone, request.since, exec_head, request.task_id)
        if landed is None:
            raise ApplicationError(
                f"task branch {request.task_branch} is not in {clone}: the task worked on "
                "another worker's clone",
                type=TASK_BRANCH_MISSING,
                non_retryable=True,
            )
        return MergeResult(merged=True, head=exec_head, already_merged=True, commit=landed)
    tip = await _rev(clone, f"refs/heads/{request.task_branch}")
    base = await _base(clone, request.task_branch, request.execution_branch)
    landed = await _find_task_commit(clone, base, exec_head, request.task_id)
    if landed is not None:
        return MergeResult(merged=True, head=exec_head, already_merged=True, commit=landed)
    message = task_commit_message(request.task_id, request.title)
    if await _rev(clone, f"{tip}^{{tree}}") == await _rev(clone, f"{base}^{{tree}}"):
        # Nothing to land, but a tick of the plan file still is.
        ticked = await _ticked(clone, await _rev(clone, f"{exec_head}^{{tree}}"), request)
        if not ticked.ticked:
            return MergeResult(merged=True, head=exec_head, tick_note=ticked.note or None)
        new = await _commit_tree(clone, ticked.tree, exec_head, message)
    elif exec_head == base and await _is_commit(clone, tip, parent=base, message=message):
        # Nothing landed since the task started: fast-forward to its own commit (a copy of
        # it with the plan file ticked).
        ticked = await _ticked(clone, await _rev(clone, f"{tip}^{{tree}}"), request)
        new = await _commit_tree(clone, ticked.tree, base, message) if ticked.ticked else tip
    else:
        merged = await _merge_tree(clone, request.execution_branch, request.task_branch)
        if merged.conflicts:
            facts = await conflict_facts(
                clone,
                merged,
                request.task_id,
                request.execution_branch,
                request.task_branch,
                base,
                exec_head,
            )
            return MergeResult(
                merged=False,
                head=exec_head,
                conflict=describe(facts),
                conflict_files=merged.conflict_files,
            )
        ticked = await _ticked(clone, merged.tree, request)
        new = await _commit_tree(clone, ticked.tree, exec_head, message)
    await _uninterrupted(_advance(clone, request.execution_branch, exec_head, new))
    return MergeResult(merged=True, head=new, commit=new, tick_note=ticked.note or None)


async def _commit_tree(clone: Path, tree: str, parent: str, message: str) -> str:
    return await _g("commit-tree", tree, "-p", parent, "-F", "-", cwd=clone, stdin=message)


async def _ticked(clone: Path, tree: str, request: MergeRequest) -> Ticked:
    """`tree` with the task ticked in its plan file (when the request carries a tick)."""
    if request.tick is None:
        return Ticked(tree, False, "")
    return await tick_tree(clone, tree, request.tick)


async def _find_task_commit(clone: Path, base: str, head: str, task_id: str) -> str | None:
    """The commit since `base` whose trailer names the task, if it landed already."""
    log = await _g(
        "log",
        f"--format=%H %(trailers:key={TASK_TRAILER},valueonly,separator=%x2C)",
        f"{base}..{head}",
        cwd=clone,
    )
    for line in log.splitlines():
        commit, _, tasks = line.partition(" ")
        if task_id in tasks.split(","):
            return commit
    return None


async def _advance(clone: Path, branch: str, old: str, new: str) -> None:
    """Move the execution branch from `old` to `new`, and its checkout in the clone with it.

    `reset --keep` updates only the files the task changed, refuses to overwrite local edits,
    and runs no hooks (a `merge --ff-only` would run post-merge).
    """
    if await _current_branch(clone) == branch:
        await _g("reset", "--quiet", "--keep", new, cwd=clone, timeout=LONG)
    else:
        await _g("update-ref", f"refs/heads/{branch}", new, old, cwd=clone)


async def _merge_tree(cwd: Path, ours: str, theirs: str) -> Merged:
    """A three-way merge computed in the object store; no working tree or index is touched."""
    args = ("-c", "core.quotePath=false", "merge-tree", "--write-tree", "--name-only")
    result = await run_git(*args, ours, theirs, cwd=cwd, timeout=LONG)
    if result.returncode not in (0, 1):  # 1: conflicts; the tree holds them as markers
        raise GitError(["merge-tree", ours, theirs], cwd, result.returncode, result.stderr)
    files, _, messages = result.stdout.partition("\n\n")
    tree, *conflict_files = files.splitlines()
    if result.returncode == 0:
        return Merged(tree)
    conflicts = [m for m in messages.splitlines() if m.startswith("CONFLICT")]
    return Merged(tree, conflict_files, conflicts or ["CONFLICT: the merge failed"])


# --- removing --------------------------------------------------------------------------------


async def _discard_worktree(clone: Path, path: Path) -> None:
    """Remove a worktree and its registration; fine when either is already gone."""
    if await _worktree_at(clone, path) is not None:
        # Twice forced: also when locked or dirty. A failure (e.g. submodules) falls back
        # to deleting the folder and pruning.
        await run_git("worktree", "remove", "--force", "--force", str(path), cwd=clone)
    if path.exists() or path.is_symlink():
        await asyncio.to_thread(shutil.rmtree, path, True)
    await _g("worktree", "prune", cwd=clone)


async def _delete_refs(clone: Path, *refs: str) -> None:
    await _g("update-ref", "--stdin", cwd=clone, stdin="".join(f"delete {r}\n" for r in refs))


# --- small git helpers -----------------------------------------------------------------------


@contextmanager
def _git_errors() -> Iterator[None]:
    """Git failures as Temporal sees them: a busy lock is worth a retry, anything else is not."""
    try:
        yield
    except GitError as err:
        busy = lock_in_the_way(err) is not None or "but expected" in err.output
        raise ApplicationError(
            str(err), type="GitBusy" if busy else "GitError", non_retryable=not busy
        ) from err


async def _g(*args: str, cwd: Path, timeout: float = 300, stdin: str | None = None) -> str:
    """git, waiting out a lock held by a live git and clearing one left by a dead git."""
    for _ in range(LOCK_WAITS):
        try:
            return await git(*args, cwd=cwd, timeout=timeout, stdin=stdin)
        except GitError as err:
            lock = lock_in_the_way(err)
            if lock is None:
                raise
            if await asyncio.to_thread(remove_stale_lock, lock):
                activity.logger.warning("removed a stale git lock %s", lock)
            else:
                await asyncio.sleep(LOCK_WAIT)
    return await git(*args, cwd=cwd, timeout=timeout, stdin=stdin)


async def _uninterrupted(step: Awaitable[T]) -> T:
    """Let a step that moves a branch finish even when the activity is cancelled meanwhile,
    so a cancel never leaves a half-updated checkout or a stale lock behind."""
    task = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with suppress(Exception):
            await task
        raise


async def _rev(cwd: Path, rev: str) -> str:
    result = await run_git("rev-parse", "--verify", "--quiet", f"{rev}^{{object}}", cwd=cwd)
    if result.returncode:
        raise ApplicationError(
            f"'{rev}' does not exist in {cwd}", type="GitRefMissing", non_retryable=True
        )
    return result.stdout


async def _exists(cwd: Path, ref: str) -> bool:
    return (await run_git("rev-parse", "--verify", "--quiet", ref, cwd=cwd)).returncode == 0


async def _current_branch(cwd: Path) -> str | None:
    result = await run_git("symbolic-ref", "--quiet", "--short", "HEAD", cwd=cwd)
    return result.stdout if result.returncode == 0 else None


async def _base(cwd: Path, branch: str, execution_branch: str | None) -> str:
    """The commit the task branch was cut from (recorded when it was cut)."""
    recorded = await run_git("rev-parse", "--verify", "--quiet", base_ref(branch), cwd=cwd)
    if recorded.returncode == 0:
        return recorded.stdout
    if execution_branch is not None:
        return await _g(
            "merge-base", f"refs/heads/{branch}", f"refs/heads/{execution_branch}", cwd=cwd
        )
    raise ApplicationError(
        f"task branch {branch} has no recorded base; create it with create_task_worktree",
        type="GitRefMissing",
        non_retryable=True,
    )


async def _is_commit(
    cwd: Path, commit: str, *, parent: str, message: str, tree: str | None = None
) -> bool:
    """Whether `commit` is the task commit we would make: same parent, message (and tree)."""
    shown = await _g("log", "-1", "--format=%P%n%T%n%B", commit, cwd=cwd)
    parents, commit_tree, body = [*shown.split("\n", 2), "", ""][:3]
    return (
        parents == parent
        and (tree is None or commit_tree == tree)
        and body.strip() == message.strip()
    )


@dataclass
class _Worktree:
    path: Path
    branch: str | None = None
    locked: str | None = None


async def _worktrees(clone: Path) -> list[_Worktree]:
    out = await _g("worktree", "list", "--porcelain", cwd=clone)
    found: list[_Worktree] = []
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        if key == "worktree":
            found.append(_Worktree(Path(value).resolve()))
        elif found and key == "branch":
            found[-1].branch = value
        elif found and key == "locked":
            found[-1].locked = value
    return found[1:]  # the first is the clone itself


async def _worktree_at(clone: Path, path: Path) -> _Worktree | None:
    target = path.resolve()
    return next((w for w in await _worktrees(clone) if w.path == target), None)


async def _usable(entry: _Worktree) -> bool:
    # `worktree add` marks a worktree "initializing" until its checkout is complete.
    return entry.locked != "initializing" and await is_git_repo(entry.path)


def _clip_stat(stat: str, limit: int = MAX_STAT_BYTES) -> str:
    """A `--stat` within `limit` bytes: the first files, a count of the rest, the summary."""
    if len(stat.encode()) <= limit:
        return stat
    *lines, summary = stat.splitlines()
    kept: list[str] = []
    size = len(summary.encode()) + 64
    for line in lines:
        size += len(line.encode()) + 1
        if size > limit:
            break
        kept.append(line)
    return "\n".join([*kept, f" ... {len(lines) - len(kept)} more files", summary])
