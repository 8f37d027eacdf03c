"""In-process git (pygit2, i.e. libgit2) for the hot path of the task worktrees: resolving refs
and revisions, reading a commit, and writing a commit object, without starting a `git` for
each (a `git rev-parse` costs a few milliseconds, these cost a fraction of one).

The trust rules of activities/git.py hold here too, more strictly: libgit2 runs no hooks, no
file-system monitor and no program named in a repository's configuration (no filter driver,
no signing program), and a repository is opened by its path, never through GIT_DIR or other
variables of the worker's environment. Commits carry the coordinator's identity
(`GIT_IDENTITY`), as the `git commit-tree` they replace did. Updating refs, checkouts, `add`
and merges stay with `git` (activities/worktree_git.py), which waits out a busy lock.
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

import pygit2

from activities.git import GIT_IDENTITY, GitError, open_repository


def resolve(cwd: Path, spec: str) -> str | None:
    """The object id `spec` names (`git rev-parse --verify --quiet spec^{object}`); None when
    it names nothing or `cwd` is no repository."""
    try:
        return str(open_repository(cwd).revparse_single(spec).id)
    except (GitError, pygit2.GitError, KeyError, ValueError):
        return None


def head_branch(cwd: Path) -> str | None:
    """The branch HEAD is on (`git symbolic-ref --short HEAD`), None when detached."""
    try:
        head = open_repository(cwd).lookup_reference("HEAD")
    except (GitError, pygit2.GitError, KeyError, ValueError):
        return None
    if head.type != pygit2.enums.ReferenceType.SYMBOLIC:
        return None
    target = str(head.target)
    return target.removeprefix("refs/heads/")


def commit_fields(cwd: Path, commit: str) -> tuple[list[str], str, str]:
    """A commit's parents, tree and message."""
    try:
        found = open_repository(cwd).revparse_single(commit).peel(pygit2.Commit)
    except (pygit2.GitError, KeyError, ValueError) as err:
        raise GitError(["log", "-1", commit], cwd, 128, str(err)) from err
    return [str(p) for p in found.parent_ids], str(found.tree_id), found.message


def write_commit(cwd: Path, tree: str, parent: str, message: str) -> str:
    """A commit object of `tree` on `parent` (`git commit-tree`); no ref moves."""
    repo = open_repository(cwd)
    author = pygit2.Signature(GIT_IDENTITY["GIT_AUTHOR_NAME"], GIT_IDENTITY["GIT_AUTHOR_EMAIL"])
    committer = pygit2.Signature(
        GIT_IDENTITY["GIT_COMMITTER_NAME"], GIT_IDENTITY["GIT_COMMITTER_EMAIL"]
    )
    try:
        oid = repo.create_commit(
            None, author, committer, message, pygit2.Oid(hex=tree), [pygit2.Oid(hex=parent)]
        )
    except (pygit2.GitError, KeyError, ValueError) as err:
        raise GitError(["commit-tree", tree, "-p", parent], cwd, 128, str(err)) from err
    return str(oid)


def set_ref(cwd: Path, ref: str, new: str, old: str | None = None) -> bool:
    """Point `ref` at `new`, only while it still points at `old` when that is given (a
    compare-and-swap, as `git update-ref ref new old`); True when done. False when libgit2
    did not (a lock held, the ref moved, anything): nothing changed, and the caller's
    `git update-ref` decides as before, waiting out a busy lock or failing with git's words."""
    try:
        repo = open_repository(cwd)
        target = pygit2.Oid(hex=new)
        if old is None:
            repo.create_reference_direct(ref, target, True)
            return True
        current = repo.lookup_reference(ref)
        if current.type != pygit2.enums.ReferenceType.DIRECT or str(current.target) != old:
            return False
        current.set_target(target)  # refused when the ref moved since it was read
    except (GitError, pygit2.GitError, KeyError, ValueError):
        return False
    return True


def delete_refs(cwd: Path, *refs: str) -> bool:
    """Delete `refs` (those that exist); False when libgit2 could not, as for `set_ref`."""
    try:
        repo = open_repository(cwd)
        for ref in refs:
            with suppress(KeyError):  # gone already
                repo.references.delete(ref)
    except (GitError, pygit2.GitError, ValueError):
        return False
    return True


def valid_ref_name(ref: str) -> bool:
    """Whether libgit2 takes `ref` for a ref name; the caller asks `git check-ref-format`
    when it does not, so git keeps the last word on a name it refuses."""
    return bool(pygit2.reference_is_valid_name(ref))


def index_tree(cwd: Path) -> str | None:
    """The tree of the worktree's index as it is on disk (`git write-tree`), written to the
    object store; None when libgit2 cannot read that index (an extension it does not know):
    the caller asks git."""
    try:
        index = open_repository(cwd).index
        index.read(True)
        return str(index.write_tree())
    except (GitError, pygit2.GitError, KeyError, ValueError, OSError):
        return None


def shown(path: str) -> str:
    """A path as text that can travel (JSON, history): bytes that are not UTF-8 in a name
    (libgit2 hands them over as surrogates) written as `\\xe9`."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# One path of a diff: (path as libgit2 names it, mode before, mode after; 0: none).
Delta = tuple[str, int, int]


def tree_deltas(cwd: Path, old: str, new: str) -> list[Delta] | None:
    """What differs between two commits' (or trees') trees, in git's order (`git diff-tree
    -r --no-renames old new`); None when libgit2 cannot tell."""
    try:
        repo = open_repository(cwd)
        old_tree = repo.revparse_single(old).peel(pygit2.Tree)
        new_tree = repo.revparse_single(new).peel(pygit2.Tree)
        diff = old_tree.diff_to_tree(new_tree)
    except (GitError, pygit2.GitError, KeyError, ValueError):
        return None
    return [
        (d.new_file.path or d.old_file.path, d.old_file.mode, d.new_file.mode) for d in diff.deltas
    ]


def changed_paths(deltas: list[Delta]) -> list[str]:
    """The paths of `deltas`, as `shown`, each once (a file turned symlink is a delete and
    an add)."""
    return list(dict.fromkeys(shown(path) for path, _, _ in deltas))
