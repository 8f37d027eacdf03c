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
- `unborn_repositories`: after a failed one, the folders git's message names as
  repositories without a commit checked out, which is what made it fail (any other
  failure stands as git's).
"""

from __future__ import annotations

import re
from pathlib import Path

import pygit2
from pygit2.enums import FileMode

from activities.git import GitError, open_repository, run_git
from activities.git_objects import shown
from activities.worktree_git import git_waiting

# git's messages as git writes them in English (parsed below).
IN_ENGLISH = {"LC_ALL": "C"}
# `git add` on a repository in the worktree that has no commit checked out.
_UNBORN = re.compile(r"^error: '(.+)/' does not have a commit checked out$", re.MULTILINE)


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
    the file (sections, quotes, case, comments; no includes, which git's submodules never
    follow either); none when git cannot read it."""
    listed = await run_git(
        *("config", "-z", "--no-includes", "--blob", f"{tree}:.gitmodules"),
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


def unborn_repositories(failure: GitError) -> list[str]:
    """The folders a failed `git add -A` (run with `IN_ENGLISH`) names as repositories
    without a commit checked out, which is what made it fail; none when it failed for
    another reason. From git's own words: opening a repository the agent made, to ask,
    could hang on a named pipe in its configuration."""
    return [shown(folder) for folder in _UNBORN.findall(failure.output)]
