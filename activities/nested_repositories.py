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
  base had none (from the diff the commit lists its files from), which `unstage` takes off
  the index again;
- `unborn_repositories`: after a failed one, the folders git's message names as
  repositories without a commit checked out, which is what made it fail (any other
  failure stands as git's).
"""

from __future__ import annotations

import re
from pathlib import Path

from pygit2.enums import FileMode

from activities.git import GitError, run_git
from activities.git_objects import Delta, shown
from activities.worktree_git import git_waiting

# `git add` on a repository in the worktree that has no commit checked out.
_UNBORN = re.compile(r"^error: '(.+)/' does not have a commit checked out$", re.MULTILINE)


async def added_gitlinks(cwd: Path, tree: str, deltas: list[Delta]) -> list[str]:
    """The paths that `deltas` (from the task's base to `tree`) make gitlinks where there
    were none, except the submodules `tree`'s .gitmodules declares (as libgit2 names them:
    `shown` for a message)."""
    added = [path for path, old, new in deltas if new == FileMode.COMMIT and old != FileMode.COMMIT]
    declared = await _declared(cwd, tree) if added else set()
    return [path for path in added if path not in declared]


async def _declared(cwd: Path, tree: str) -> set[str]:
    """The paths of the submodules the tree's .gitmodules declares with a URL, as git reads
    the file (sections, quotes, case, comments; no includes, which git's submodules never
    follow either); none when there is none or git cannot read it."""
    listed = await run_git(
        *("config", "-z", "--no-includes", "--blob", f"{tree}:.gitmodules"),
        *("--get-regexp", r"^submodule\..*\.(path|url)$"),
        cwd=cwd,
    )
    if listed.returncode != 0:  # 1: nothing matches; else no such file, or not a config
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
    """The folders a failed `git add -A` names as repositories without a commit checked out
    (git speaks English to the coordinator: activities/git.py), which is what made it fail;
    none when it failed for another reason. From git's own words: opening a repository the
    agent made, to ask, could hang on a named pipe in its configuration."""
    return [shown(folder) for folder in _UNBORN.findall(failure.output)]
