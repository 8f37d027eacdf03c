"""Task worktrees: every task works on its own branch and lands as exactly one commit.

How a task's commit reaches the execution branch: it is cherry-picked onto the execution
head *in memory* (`git merge-tree --write-tree`, a three-way merge whose merge base is the
task's base, since the task branch is one commit on a base the execution branch has moved
past), committed as a bare commit object (activities/git_objects.py), and the execution
branch is fast-forwarded to it (or straight to the task's own commit when nothing landed
meanwhile). History stays linear with one commit per task, and nothing is ever "in
progress": a conflict touches no working tree and leaves nothing to abort, and a crash leaves
the branch at either the old or the new head.

Every activity can be retried after a crash at any point: the `Coord-Task: <id>` trailer and
the recorded base ref let a retry find work already done instead of doing it twice. Commits are
written as objects in-process (libgit2, activities/git_objects.py) and branches moved with
`update-ref`, so no editor runs; no hook ever does (activities/git.py switches them off for
every git the coordinator runs, and libgit2 runs none). Refs and revisions are resolved
in-process too: a `git` per lookup cost a few milliseconds each, a dozen per task.

Here: the activities, creating (and replaying) a worktree, cleaning up. The commit is in
activities/worktree_commit.py, the merge in activities/worktree_merge.py, a task's commit,
merge, push and removal as one step in activities/worktree_land.py, the git steps they share
in activities/worktree_git.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from contextlib import suppress
from pathlib import Path
from typing import Literal

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.conflicts import (
    conflict_facts,
    forget_conflicts,
    record_conflict,
)
from activities.git import (
    GitError,
    common_dir,
    repo_lock,
    run_git,
)
from activities.git_checkout import fill_new_worktree
from activities.git_objects import valid_ref_name, write_commit
from activities.heartbeat import heartbeating
from activities.named_pipes import sweep_named_pipes
from activities.spare_check import exactly_tracked, nothing_special
from activities.worktree_add import register_worktree
from activities.worktree_commit import commit_worktree
from activities.worktree_git import (
    LONG,
    admin_dir,
    clip_stat,
    current_branch,
    delete_ref_names,
    delete_worktree_folders,
    discard_worktree,
    find_task_commit,
    git_errors,
    git_waiting,
    merge_tree,
    ref_exists,
    resolved,
    rev,
    task_base,
    uninterrupted,
    update_ref,
    usable,
    worktree_at,
    worktree_entries,
)
from activities.worktree_land import land
from activities.worktree_merge import TASK_BRANCH_MISSING as TASK_BRANCH_MISSING
from activities.worktree_merge import merge
from activities.worktree_spares import discarded_dir, spares_dir
from activities.worktree_spares import set_aside as set_aside_spare
from activities.worktree_spares import take as take_spare
from coordinator.branches import (
    MAX_DIFF_FILES,
    CommitRequest,
    CommitResult,
    CreateWorktreeRequest,
    DiffRequest,
    DiffSummary,
    LandRequest,
    LandResult,
    MergeRequest,
    MergeResult,
    PendingWorkRequest,
    PendingWorkResult,
    RemoveWorktreeRequest,
    TaskWorktree,
    artifacts_dir,
    base_ref,
    task_branch,
    task_worktree_path,
)
from coordinator.conflicts import describe

# Tool caches that gates create in a worktree as a side effect; never part of a task's commit
# even when the repository's .gitignore forgets them.
# How a worktree whose files are still to be checked out was made (`_create`).
Made = Literal["new", "spare"]
# A spare's clean and reset take some 30 ms for 5,000 files; one that takes this long is
# stuck (on a named pipe, say) and replaced by a new worktree (seconds).
SPARE_RESET = 120.0
TOOL_CACHES = ("__pycache__/", "*.py[cod]", ".pytest_cache/", ".mypy_cache/", ".ruff_cache/")
REPLAY_SNAPSHOT = "coord: snapshot of the task before replaying it"
REPLAY_RECORD = "coord-replay.json"
UNFINISHED_TRAILER = "Coord-Unfinished"


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
            with git_errors():
                ref = f"refs/heads/{branch}"
                if not valid_ref_name(ref) and (await run_git("check-ref-format", ref)).returncode:
                    raise ApplicationError(
                        f"task id '{request.task_id}' cannot be part of a git branch name",
                        type="BadTaskId",
                        non_retryable=True,
                    )
                async with repo_lock(clone):
                    made, check_out = await _create(clone, path, branch, request)
                # Its files, after the lock: the checkout is the slow part.
                if check_out is not None and not await _check_out(path, check_out):
                    # A spare that is not exactly its tracked files: a new worktree instead.
                    async with repo_lock(clone):
                        unfit = set_aside_spare(clone, path)
                        made, check_out = await _create(clone, path, branch, request, spare=False)
                    await delete_worktree_folders(*unfit)
                    if check_out is not None:
                        await _check_out(path, check_out)
                return made

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
            with git_errors():
                return await commit_worktree(wt, request)

    @activity.defn(name="merge_task")
    async def merge_task(self, request: MergeRequest) -> MergeResult:
        """Land the task's commit on the execution branch; a conflict is a result, not an error."""
        clone = Path(request.workspace)
        async with heartbeating(f"merge {request.task_id}"):
            with git_errors():
                # The workflow merges one task at a time; the lock holds even if it did not.
                async with repo_lock(clone):
                    return await merge(clone, request)

    @activity.defn(name="land_task")
    async def land_task(self, request: LandRequest) -> LandResult:
        """A task's commit, merge, push and worktree removal in one step
        (activities/worktree_land.py): what `commit_task`, `merge_task`, `publish_branch` and
        `remove_task_worktree` do, with one round trip instead of four."""
        clone = Path(request.merge.workspace)
        path = self._worktree_path(request.execution_id, request.merge.task_id)
        async with heartbeating(f"land {request.merge.task_id}"):
            with git_errors():
                return await land(clone, request, path)

    @activity.defn(name="remove_task_worktree")
    async def remove_task_worktree(self, request: RemoveWorktreeRequest) -> None:
        clone = Path(request.workspace)
        path = self._worktree_path(request.execution_id, request.task_id)
        branch = task_branch(request.execution_id, request.task_id)
        async with heartbeating(f"remove worktree of {request.task_id}"):
            with git_errors():
                async with repo_lock(clone):
                    await discard_worktree(clone, path)
                    if request.delete_branch:
                        await delete_ref_names(clone, f"refs/heads/{branch}", base_ref(branch))

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
            with git_errors():
                async with repo_lock(clone):
                    return await self._pending(clone, request)

    @activity.defn(name="diff_from_base")
    async def diff_from_base(self, request: DiffRequest) -> DiffSummary:
        """The diff from the base as a patch file for the reviewer; a summary for history."""
        clone = Path(request.workspace)
        async with heartbeating(f"diff of {request.execution_id}"):
            with git_errors():
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
        head = await rev(clone, f"refs/heads/{request.execution_branch}")
        worktrees_dir = self._worktree_path(request.execution_id, "x").parent
        prefix = task_branch(request.execution_id, "")
        result = PendingWorkResult(head=head)
        spares = spares_dir(worktrees_dir / "x")
        for entry in await worktree_entries(clone):
            if entry.path.parent == spares.resolve():  # activities/worktree_spares.py
                await discard_worktree(clone, entry.path)
                continue
            branch = (entry.branch or "").removeprefix("refs/heads/")
            if not branch.startswith(prefix):
                if entry.path.parent != worktrees_dir.resolve():
                    continue  # not this execution's
                branch = task_branch(request.execution_id, entry.path.name)
            task_id = branch.removeprefix(prefix)
            if await usable(entry) and await _keep_unfinished(entry.path, branch, task_id, head):
                result.unfinished_branches[task_id] = branch
            await discard_worktree(clone, entry.path)
            result.removed_worktrees.append(task_id)
            if task_id not in result.unfinished_branches:
                await delete_ref_names(clone, f"refs/heads/{branch}", base_ref(branch))
        # Folders of worktrees whose creation was cut short, spares, spares thrown away.
        for folder in (worktrees_dir, spares, discarded_dir(worktrees_dir / "x")):
            if folder.exists():
                await asyncio.to_thread(shutil.rmtree, folder, True)
        # What registrations, removals and landings cut short by a crash left in the git
        # folder (activities/worktree_add.py, worktree_git.py, worktree_land.py): nothing
        # of this execution is in flight any more.
        common = common_dir(clone)
        for leftover in ("coord-staging", "coord-trash", "coord-landed"):
            await asyncio.to_thread(shutil.rmtree, common / leftover, True)
        await git_waiting("worktree", "prune", cwd=clone)
        return result

    async def _diff(self, clone: Path, request: DiffRequest) -> DiffSummary:
        head = await rev(clone, request.head)
        base = await rev(clone, request.base_commit)
        folder = artifacts_dir(self.workspace_root, request.execution_id)
        folder.mkdir(parents=True, exist_ok=True)
        patch = folder / f"diff-{head[:12]}.patch"
        partial = folder / f".{patch.name}.{os.getpid()}.tmp"
        # Written aside and renamed, so a crash never leaves a truncated patch to be trusted.
        diff = ("-c", "core.quotePath=false", "diff", "--no-color", "--no-ext-diff")
        await git_waiting(
            *diff, "--no-textconv", f"--output={partial}", base, head, cwd=clone, timeout=LONG
        )
        partial.replace(patch)
        names = await git_waiting(*diff, "--name-only", base, head, cwd=clone, timeout=LONG)
        files = names.splitlines()
        stat = await git_waiting(*diff, "--stat=100", base, head, cwd=clone, timeout=LONG)
        return DiffSummary(
            files=files[:MAX_DIFF_FILES],
            total_files=len(files),
            stat=clip_stat(stat),
            diff_path=str(patch),
            head=head,
        )


# --- creating and reusing a worktree -------------------------------------------------------


async def _create(
    clone: Path, path: Path, branch: str, request: CreateWorktreeRequest, *, spare: bool = True
) -> tuple[TaskWorktree, Made | None]:
    """The worktree, and how it was made when its files are still to be checked out
    (`_check_out`): from nothing, or from a spare (unless `spare` is False)."""
    exec_head = await rev(clone, f"refs/heads/{request.execution_branch}")
    bref = base_ref(branch)
    await _exclude_tool_caches(clone)
    entry = await worktree_at(clone, path)
    if entry is not None:  # a specialist's files: git would wait on such pipes for ever
        await sweep_named_pipes(path)
    if entry is None or not await usable(entry):
        if entry is not None or path.exists() or path.is_symlink():
            # An `add` cut short by a crash, or a folder left without its registration: start
            # again (with nothing at all there, as usual, nothing to clean up).
            await discard_worktree(clone, path, registered=entry is not None)
        entry = None
        keep_branch = (
            request.attempt > 1
            and not request.fresh
            and await ref_exists(clone, f"refs/heads/{branch}")
            and await ref_exists(clone, bref)
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        if keep_branch:  # removed but not deleted: the next attempt builds on the branch
            await git_waiting(
                "worktree", "add", "--quiet", str(path), branch, cwd=clone, timeout=LONG
            )
        else:
            # Registered and on its branch, locked (activities/worktree_add.py) until
            # `_check_out`, after the clone's lock: empty, or a spare worktree's folder with
            # an earlier task's files (activities/worktree_spares.py).
            made: Made = "spare"
            if not spare or not await take_spare(clone, path, branch, exec_head):
                await register_worktree(clone, path, branch, exec_head)
                made = "new"
            await update_ref(clone, bref, exec_head)
            return TaskWorktree(path=str(path), branch=branch, base_commit=exec_head), made
    elif request.fresh:
        # -B also brings back a worktree whose HEAD a specialist moved to another branch.
        await git_waiting(
            "checkout", "--quiet", "--force", "-B", branch, exec_head, cwd=path, timeout=LONG
        )
        await git_waiting("clean", "-ffdq", cwd=path, timeout=LONG)
        forget_conflicts(admin_dir(path))
        await update_ref(clone, bref, exec_head)
        return TaskWorktree(path=str(path), branch=branch, base_commit=exec_head), None
    if await current_branch(path) != branch:
        raise ApplicationError(
            f"the worktree {path} is no longer on its task branch {branch} (did the specialist "
            "switch branches?); retry the task from scratch",
            type="WorktreeOffBranch",
            non_retryable=True,
        )
    base = await task_base(clone, branch, request.execution_branch)
    head = await rev(path, "HEAD")
    if request.attempt > 1 and head != base and base != exec_head:
        return await uninterrupted(_replay(path, branch, base, exec_head, request)), None
    replayed = await _replay_record(path, request.attempt, base)
    if replayed is not None:  # a retry of the attempt that replayed: the same answer
        return replayed, None
    return TaskWorktree(path=str(path), branch=branch, base_commit=base), None


async def _check_out(path: Path, made: Made) -> bool:
    """The files of a worktree made without them or from a spare (`_create`), then it is
    unlocked: ready. Only in its own folder and index, so no lock on the clone is needed.
    In-process where that is what git would write (activities/git_checkout.py, for an empty
    folder only), else `git reset --hard`. A spare with a named pipe, socket or device is not
    used (git would neither remove it nor check what it reads from it); it is cleaned first
    (`git clean -ffdx`: no untracked `.gitattributes` of an earlier task applies to what
    the reset writes) and checked after. False: a spare found unfit, or whose clean or reset
    failed or took too long, or that did not become exactly the branch's tracked files
    (activities/spare_check.py); the caller makes a new worktree."""
    if made == "new":
        if not await asyncio.to_thread(fill_new_worktree, path):
            await git_waiting("reset", "--hard", "--quiet", cwd=path, timeout=LONG)
    else:
        if not await asyncio.to_thread(nothing_special, path):
            return False
        try:
            await git_waiting("clean", "-ffdxq", cwd=path, timeout=SPARE_RESET)
            await git_waiting("reset", "--hard", "--quiet", cwd=path, timeout=SPARE_RESET)
        except (GitError, TimeoutError):
            return False
        if not await asyncio.to_thread(exactly_tracked, path):
            return False
    (admin_dir(path) / "locked").unlink(missing_ok=True)
    return True


async def _replay(
    wt: Path, branch: str, base: str, exec_head: str, request: CreateWorktreeRequest
) -> TaskWorktree:
    """Move the task's changes onto the execution head, uncommitted, markers where they clash.

    Each step can be redone after a crash: the snapshot commit is recognised and reused, and
    the outcome is recorded before the branch moves, so a retry answers the same.
    """
    head = snapshot = await rev(wt, "HEAD")
    if await git_waiting("log", "-1", "--format=%s", head, cwd=wt) != REPLAY_SNAPSHOT:
        await git_waiting("add", "-A", cwd=wt, timeout=LONG)
        tree = await git_waiting("write-tree", cwd=wt)
        snapshot = write_commit(wt, tree, base, REPLAY_SNAPSHOT + "\n")
        await git_waiting("update-ref", f"refs/heads/{branch}", snapshot, head, cwd=wt)
    # Branch names as arguments label the conflict markers for the fixer.
    merged = await merge_tree(wt, request.execution_branch, branch)
    await git_waiting("read-tree", "--reset", "-u", merged.tree, cwd=wt, timeout=LONG)
    admin = admin_dir(wt)
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
    await git_waiting(
        "update-ref",
        "--stdin",
        cwd=wt,
        stdin=f"update refs/heads/{branch} {exec_head}\nupdate {base_ref(branch)} {exec_head}\n",
    )
    await git_waiting("reset", "--quiet", cwd=wt, timeout=LONG)  # the changes stay, unstaged
    return result


async def _replay_record(wt: Path, attempt: int, base: str) -> TaskWorktree | None:
    """What the replay of this very attempt returned, if it happened."""
    record = admin_dir(wt) / REPLAY_RECORD
    with suppress(FileNotFoundError, KeyError, TypeError, ValueError):  # none, or torn
        data = json.loads(record.read_text())
        found = TaskWorktree.model_validate(data["worktree"])
        if data["attempt"] == attempt and found.base_commit == base:
            return found
    return None


async def _exclude_tool_caches(clone: Path) -> None:
    exclude = common_dir(clone) / "info" / "exclude"
    text = exclude.read_text() if exclude.exists() else ""
    missing = [p for p in TOOL_CACHES if p not in text.splitlines()]
    if missing:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        prefix = "" if not text or text.endswith("\n") else "\n"
        lines = "\n".join(["# added by coord: caches gates leave behind", *missing])
        with exclude.open("a") as out:
            out.write(f"{prefix}{lines}\n")


async def _keep_unfinished(wt: Path, branch: str, task_id: str, exec_head: str) -> bool:
    """Keep a cancelled task's changes as a commit on its branch; False when it has none
    or when it is finished (merged, its worktree merely not removed yet)."""
    await sweep_named_pipes(wt)  # git would wait on them for ever
    base = await resolved(wt, base_ref(branch))
    if base is None or await current_branch(wt) != branch:
        return False
    if await find_task_commit(wt, base, exec_head, task_id) is not None:
        return False
    await git_waiting("add", "-A", cwd=wt, timeout=LONG)
    tree = await git_waiting("write-tree", cwd=wt)
    if tree == await rev(wt, f"{base}^{{tree}}"):
        return False
    head = await rev(wt, "HEAD")
    if await rev(wt, "HEAD^{tree}") != tree:
        message = (
            f"{task_id}: unfinished work (cancelled before its gates passed)\n\n"
            f"{UNFINISHED_TRAILER}: {task_id}\n"
        )
        commit = write_commit(wt, tree, base, message)
        await git_waiting("update-ref", f"refs/heads/{branch}", commit, head, cwd=wt)
    return True
