"""The two git questions a landing asks under the clone's lock, answered in-process (libgit2)
where the answer cannot differ from git's, and only there.

Every landing but the first of a layer asks them, one after another under the lock, so each
`git` they cost (some 5-10 ms on a busy machine) is paid once per task in a row:

- Did the task's commit land already (`git log base..head` for its trailer)? Without a
  commit since `base` whose message names the task as a whole word, git cannot find one
  either: `might_have_landed` says so, and only a "maybe" goes to git.
- What does the cherry-pick of the task onto the execution head make (`git merge-tree`)?
  When the two sides, since their one merge base, only added or changed files, never the
  same path and never a file where the other has a folder, git's answer is the head's tree
  with the task's files in it, whatever git's rename, directory-rename or merge-driver
  settings say (they act on deletions and on files both sides changed): `disjoint_merge`
  builds that tree. Anything else goes to git, which says what clashes.

A shallow clone, replaced objects (`refs/replace`, which libgit2 ignores), a case-insensitive
checkout (`core.ignoreCase`) or configuration in `GIT_CONFIG_*` variables: git decides.
"""

from __future__ import annotations

import os
import re
from collections.abc import Set as AbstractSet
from pathlib import Path

import pygit2
from pygit2.enums import DeltaStatus, FileMode

from activities.git import GitError, open_repository, shared_git_dir
from activities.git_checkout import GIT_CONFIG_VARIABLES

_LIBGIT2_ERRORS = (GitError, pygit2.GitError, KeyError, ValueError, OSError)
_ONE_SIDED = (DeltaStatus.ADDED, DeltaStatus.MODIFIED)
# Task ids are `[a-z0-9][a-z0-9_.-]*` (coordinator/plan.py); a trailer value git reads is the
# id with neither side touching another id character.
_ID_CHARS = "A-Za-z0-9_.-"


def might_have_landed(cwd: Path, base: str, head: str, task_id: str) -> bool:
    """False when no commit in `base..head` names `task_id` anywhere in its message (git's
    trailer search cannot find it then); True when one might, or libgit2 cannot tell."""
    word = re.compile(
        rf"(?<![{_ID_CHARS}]){re.escape(task_id)}(?![{_ID_CHARS}])".encode(), re.ASCII
    )
    try:
        repo = open_repository(cwd)
        if not _same_history_as_git(repo):
            return True
        walker = repo.walk(repo.revparse_single(head).peel(pygit2.Commit).id)
        walker.hide(repo.revparse_single(base).peel(pygit2.Commit).id)
        return any(word.search(commit.raw_message) for commit in walker)
    except _LIBGIT2_ERRORS:
        return True


def disjoint_merge(cwd: Path, ours: str, theirs: str) -> str | None:
    """The tree `git merge-tree --write-tree ours theirs` writes, when the sides changed
    disjoint files only (see above); None: ask git."""
    try:
        repo = open_repository(cwd)
        if not _same_history_as_git(repo) or _ignores_case(repo):
            return None
        head = repo.revparse_single(ours).peel(pygit2.Commit)
        task = repo.revparse_single(theirs).peel(pygit2.Commit)
        base = _only_merge_base(repo, head, task)
        if base is None:
            return None
        ours_changes = _changes(base.tree, head.tree)
        theirs_changes = _changes(base.tree, task.tree)
        if ours_changes is None or theirs_changes is None:
            return None
        if _overlap(ours_changes.keys(), theirs_changes.keys()):
            return None
        index = pygit2.Index()
        index.read_tree(head.tree)
        for path, (oid, mode) in theirs_changes.items():
            index.add(pygit2.IndexEntry(path, oid, FileMode(mode)))
        return str(index.write_tree(repo))
    except _LIBGIT2_ERRORS:
        return None


def _same_history_as_git(repo: pygit2.Repository) -> bool:
    """Whether git would walk the same commits libgit2 does: no grafts of a shallow clone, no
    replaced objects, no configuration libgit2 does not read."""
    if repo.is_shallow or any(name in os.environ for name in GIT_CONFIG_VARIABLES):
        return False
    common = shared_git_dir(Path(repo.path))
    if (common / "refs" / "replace").exists() or (common / "info" / "grafts").exists():
        return False
    packed = common / "packed-refs"
    return not (packed.exists() and b" refs/replace/" in packed.read_bytes())


def _ignores_case(repo: pygit2.Repository) -> bool:
    config = repo.config
    return "core.ignoreCase" in config and config.get_bool("core.ignoreCase")


def _only_merge_base(
    repo: pygit2.Repository, head: pygit2.Commit, task: pygit2.Commit
) -> pygit2.Commit | None:
    """The merge base of the two, when it is the only one: the task's commits lead to it one
    parent each, and none of them is on the head's side (else git might find another)."""
    found = repo.merge_base(head.id, task.id)
    if found is None:
        return None
    commit = task
    while commit.id != found:
        if len(commit.parent_ids) != 1 or repo.descendant_of(head.id, commit.id):
            return None
        commit = commit.parents[0]
    return repo[found].peel(pygit2.Commit)


def _changes(old: pygit2.Tree, new: pygit2.Tree) -> dict[str, tuple[pygit2.Oid, int]] | None:
    """Path -> (blob, mode) of what `new` added or changed since `old`; None when it deleted
    anything, or turned a file into another kind (git may see a rename there)."""
    changes: dict[str, tuple[pygit2.Oid, int]] = {}
    for delta in old.diff_to_tree(new).deltas:
        if delta.status not in _ONE_SIDED:
            return None
        changes[delta.new_file.path] = (delta.new_file.id, delta.new_file.mode)
    return changes


def _overlap(ours: AbstractSet[str], theirs: AbstractSet[str]) -> bool:
    """A path both changed, or a file of one where the other has a folder."""
    if ours & theirs:
        return True
    return bool(_folders(ours) & theirs) or bool(_folders(theirs) & ours)


def _folders(paths: AbstractSet[str]) -> set[str]:
    folders: set[str] = set()
    for path in paths:
        parts = path.split("/")[:-1]
        folders.update("/".join(parts[: depth + 1]) for depth in range(len(parts)))
    return folders
