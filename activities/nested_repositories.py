"""Git repositories a specialist left inside a task's worktree (a library cloned to read it, a
project scaffolded with its own `git init`), which a task's commit must not take in.

`git add -A` stages such a folder as a bare submodule link (a gitlink: one commit id, none of
the files, no `.gitmodules` entry to fetch it from), so the pull request would carry a
pointer nobody can follow instead of the files; and for a repository without a commit it
fails outright ("does not have a commit checked out"). The commit is refused instead, naming
the folders (coordinator/nested_repositories.py says what to do), and the task's next
attempt sees why. A submodule the branch already has, or one declared in the commit's own
`.gitmodules` (`git submodule add`), is a submodule, not a leftover: it is committed.

- `added_gitlinks`: after a successful `git add -A`, the gitlinks the new tree has where the
  base had none (from the diff of the two trees, in-process: only what changed is read,
  whatever index extension made the tree a job for git), which `unstage` takes off the
  index again;
- `untracked_repositories`: after a failed one, the folders git lists as untracked
  repositories (`git ls-files --others --exclude-standard` names each as `path/`), which
  is one process more, on that path only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pygit2
from pygit2.enums import FileMode

from activities.git import GitError, open_repository
from activities.git_objects import shown
from activities.worktree_git import git_waiting

# A `path = ...` line of .gitmodules (git-config syntax; quotes optional).
_DECLARED = re.compile(r'^\s*path\s*=\s*"?(.*?)"?\s*$', re.MULTILINE)


def added_gitlinks(cwd: Path, base: str, tree: str) -> list[str]:
    """The paths that are gitlinks in `tree` and were none in `base`'s tree, except those
    `tree`'s .gitmodules declares (as libgit2 names them: `shown` for a message)."""
    try:
        repo = open_repository(cwd)
        old = repo.revparse_single(base).peel(pygit2.Tree)
        new = repo.revparse_single(tree).peel(pygit2.Tree)
        added = [
            delta.new_file.path
            for delta in old.diff_to_tree(new).deltas
            if delta.new_file.mode == FileMode.COMMIT and delta.old_file.mode != FileMode.COMMIT
        ]
        declared = _declared(repo, new) if added else set()
    except (pygit2.GitError, KeyError, ValueError) as err:
        raise GitError(["diff-tree", base, tree], cwd, 128, str(err)) from err
    return [path for path in added if path not in declared]


async def unstage(cwd: Path, paths: list[str]) -> None:
    """Take the gitlinks `git add -A` staged off the index again: staged, they would stay
    links after the folders' .git is gone, and the files would never be added."""
    await git_waiting(
        *("--literal-pathspecs", "reset", "--quiet", "HEAD", "--"),
        *paths,
        cwd=cwd,
    )


def _declared(repo: pygit2.Repository, tree: pygit2.Tree) -> set[str]:
    """The submodule paths the tree's .gitmodules names."""
    try:
        blob = repo[tree[".gitmodules"].id].peel(pygit2.Blob)
    except KeyError:
        return set()
    return set(_DECLARED.findall(blob.data.decode(errors="replace")))


async def untracked_repositories(cwd: Path) -> list[str]:
    """The untracked, unignored folders of the worktree that are git repositories."""
    try:
        listed = await git_waiting(
            *("-c", "core.quotePath=false", "ls-files", "--others", "--exclude-standard", "-z"),
            cwd=cwd,
        )
    except GitError:
        return []
    return [shown(e.removesuffix("/")) for e in listed.split("\0") if e.endswith("/")]
