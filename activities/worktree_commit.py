"""A task's one commit: everything in its worktree (minus ignored files) on the task's base.

A commit already on the branch (an earlier attempt, or the specialist's own commits) is
replaced, so a task is always exactly one commit; a retry after the commit landed finds it and
returns it unchanged. While a file of a conflict replayed into the worktree still holds
conflict markers, or a folder in it is a git repository of its own
(activities/nested_repositories.py), nothing is committed: the result says where. The index is the
specialist's, so `add -A` stays with git; the tree of the index, the list of files changed,
the commit object and the ref move are in-process (activities/git_objects.py), with git for
an index libgit2 cannot read."""

from __future__ import annotations

from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.conflicts import markers_added, markers_left
from activities.git import GitError
from activities.git_objects import (
    Delta,
    changed_paths,
    index_tree,
    shown,
    tree_deltas,
    write_commit,
)
from activities.named_pipes import sweep_named_pipes
from activities.nested_repositories import (
    added_gitlinks,
    unborn_repositories,
    unstage,
)
from activities.worktree_git import (
    LONG,
    admin_dir,
    current_branch,
    git_waiting,
    is_task_commit,
    rev,
    task_base,
    uninterrupted,
    update_ref,
)
from coordinator.branches import (
    TASK_BRANCH_PREFIX,
    CommitRequest,
    CommitResult,
    task_commit_message,
)


async def commit_worktree(wt: Path, request: CommitRequest) -> CommitResult:
    branch = await current_branch(wt)
    if branch is None or not branch.startswith(TASK_BRANCH_PREFIX):
        raise ApplicationError(
            f"{wt} is not on a task branch (HEAD: {branch or 'detached'}); "
            "create it with create_task_worktree",
            type="NotATaskWorktree",
            non_retryable=True,
        )
    base = await task_base(wt, branch, None)
    head = await rev(wt, "HEAD")
    admin = admin_dir(wt)
    left, others = await markers_left(wt, admin)
    if left:  # nothing with conflict markers is committed, let alone merged
        return CommitResult(commit=None, unresolved=left, conflicting_with=others)
    await sweep_named_pipes(wt)  # git would wait on them for ever
    try:
        await git_waiting("add", "-A", cwd=wt, timeout=LONG)
    except GitError as err:
        if nested := unborn_repositories(err):  # git refuses one without a commit
            return CommitResult(commit=None, nested=nested)
        raise
    if moved := await markers_added(wt, admin, base):  # markers under another name
        _, others = await markers_left(wt, admin, everything=True)
        return CommitResult(commit=None, unresolved=moved, conflicting_with=others)
    tree = index_tree(wt) or await git_waiting("write-tree", cwd=wt)
    if tree == await rev(wt, f"{base}^{{tree}}"):
        if head != base:  # the task undid its earlier commit: zero commits, not an empty one
            await update_ref(wt, f"refs/heads/{branch}", base, head)
        return CommitResult(commit=None, no_changes=True)
    deltas = tree_deltas(wt, base, tree)
    if deltas is None:  # libgit2 cannot tell
        deltas = await _deltas_by_git(wt, base, tree)
    if nested := await added_gitlinks(wt, tree, deltas):
        await unstage(wt, base, nested)
        return CommitResult(commit=None, nested=[shown(path) for path in nested])
    message = task_commit_message(request.task_id, request.title)
    if head != base and await is_task_commit(wt, head, parent=base, tree=tree, message=message):
        commit = head  # a retry after the commit landed
    else:
        # A new commit on the base replaces (amends) any commit of an earlier attempt.
        commit = write_commit(wt, tree, base, message)
        await uninterrupted(update_ref(wt, f"refs/heads/{branch}", commit, head))
    return CommitResult(commit=commit, files_changed=changed_paths(deltas))


async def _deltas_by_git(wt: Path, base: str, tree: str) -> list[Delta]:
    """`tree_deltas` asked of git (`:<old mode> <new mode> <ids> <status>`, then the path)."""
    listed = await git_waiting("diff-tree", "-r", "-z", "--no-renames", base, tree, cwd=wt)
    fields = listed.split("\0")
    return [
        (path, int(meta[1:].split(" ")[0], 8), int(meta.split(" ")[1], 8))
        for meta, path in zip(fields[0::2], fields[1::2], strict=False)
        if meta.startswith(":")
    ]
