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
- `unborn_repositories`: after a failed one, the folders git lists as untracked
  repositories (`git ls-files --others --exclude-standard` names each as `path/`), when one
  has no commit checked out, which is what made it fail (any other failure stands as
  git's); one process more, on that path only.
"""

from __future__ import annotations

from pathlib import Path

import pygit2
from pygit2.enums import FileMode

from activities.git import GitError, open_repository, run_git
from activities.git_objects import shown
from activities.worktree_git import git_waiting


async def added_gitlinks(cwd: Path, base: str, tree: str) -> list[str]:
    """The paths that are gitlinks in `tree` and were none in `base`'s tree, except the
    submodules `tree`'s .gitmodules declares (as libgit2 names them: `shown` for a message)."""
    try:
        repo = open_repository(cwd)
        old = repo.revparse_single(base).peel(pygit2.Tree)
        new = repo.revparse_single(tree).peel(pygit2.Tree)
        added = [
            delta.new_file.path
            for delta in old.diff_to_tree(new).deltas
            if delta.new_file.mode == FileMode.COMMIT and delta.old_file.mode != FileMode.COMMIT
        ]
        listed = ".gitmodules" in new
    except (pygit2.GitError, KeyError, ValueError) as err:
        raise GitError(["diff-tree", base, tree], cwd, 128, str(err)) from err
    declared = await _declared(cwd, tree) if added and listed else set()
    return [path for path in added if path not in declared]


async def _declared(cwd: Path, tree: str) -> set[str]:
    """The paths of the submodules the tree's .gitmodules declares with a URL, as git reads
    the file (sections, quotes, case, comments); none when git cannot read it."""
    listed = await run_git(
        *("config", "-z", "--blob", f"{tree}:.gitmodules"),
        *("--get-regexp", r"^submodule\..*\.(path|url)$"),
        cwd=cwd,
    )
    if listed.returncode != 0:  # 1: nothing matches; else not a configuration file
        return set()
    found: dict[str, dict[str, str]] = {}
    for entry in listed.stdout.split("\0"):
        key, _, value = entry.partition("\n")
        name, _, field = key.rpartition(".")
        found.setdefault(name, {})[field] = value
    return {fields["path"] for fields in found.values() if fields.keys() >= {"path", "url"}}


async def unstage(cwd: Path, base: str, paths: list[str]) -> None:
    """Put the index back as the task's base has `paths` (none: untracked again), taking off
    the gitlinks `git add -A` staged: staged (or committed by the specialist itself, which
    the branch's head then holds), they would stay links after the folders' .git is gone,
    and the files would never be added."""
    await git_waiting(
        *("--literal-pathspecs", "reset", "--quiet", base, "--"),
        *paths,
        cwd=cwd,
    )


async def unborn_repositories(cwd: Path) -> list[str]:
    """The untracked, unignored folders of the worktree that are git repositories, when one
    of them has no commit checked out (what makes `git add -A` fail outright); none when
    none has."""
    try:
        listed = await git_waiting(
            *("-c", "core.quotePath=false", "ls-files", "--others", "--exclude-standard", "-z"),
            cwd=cwd,
        )
    except GitError:
        return []
    folders = [entry.removesuffix("/") for entry in listed.split("\0") if entry.endswith("/")]
    if not any(_unborn(cwd / folder) for folder in folders):
        return []
    return [shown(folder) for folder in folders]


def _unborn(folder: Path) -> bool:
    """Whether the repository at `folder` has no commit checked out (libgit2 runs nothing a
    repository's configuration names)."""
    try:
        return bool(pygit2.Repository(str(folder)).head_is_unborn)
    except (pygit2.GitError, KeyError, ValueError, OSError):
        return False
