"""The two git questions a landing asks under the clone's lock, answered in-process (libgit2)
where the answer cannot differ from git's, and only there.

Every landing but the first of a layer asks them, one after another under the lock, so each
`git` they cost (some 5-10 ms on a busy machine) is paid once per task in a row:

- Did the task's commit land already (`git log base..head` for its trailer)? Without a
  commit since `base` whose UTF-8 message names the task as a whole word, git cannot find
  one either: `might_have_landed` says so, and only a "maybe" goes to git.
- What does the cherry-pick of the task onto the execution head make (`git merge-tree`)?
  When, since their one merge base, neither side deleted anything or changed an entry's
  kind, and no entry was changed by both (even alike: git then walks the change, renames
  and all), git's answer is the trivial merge: at each name, the side that changed it;
  folders both changed merged name by name and written anew (the root always); the rest
  taken whole, empty folders too. Git's rename, directory-rename and merge-driver settings
  act on deletions and on files both sides changed, so they do not change that answer.
  `disjoint_merge` builds that tree, reading only the folders on the way to the changes, so
  its cost follows the change, not the repository (and past 20,000 entries read, git is
  asked: it reads them faster). Anything else goes to git, which says what clashes.

A shallow clone, replaced objects (`refs/replace`, which libgit2 ignores), a case-insensitive
checkout (`core.ignoreCase`), configuration in `GIT_CONFIG_*` variables or a name that is
not UTF-8: git decides.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pygit2
from pygit2.enums import FileMode

from activities.git import GitError, open_repository, shared_git_dir
from activities.git_checkout import GIT_CONFIG_VARIABLES

_LIBGIT2_ERRORS = (GitError, pygit2.GitError, KeyError, ValueError, OSError)
_TREE = int(FileMode.TREE)
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
        return any(_foreign(commit) or word.search(commit.raw_message) for commit in walker)
    except _LIBGIT2_ERRORS:
        return True


def disjoint_merge(cwd: Path, ours: str, theirs: str) -> str | None:
    """The tree `git merge-tree --write-tree ours theirs` writes, when no path was changed
    by both sides and nothing was deleted (see above); None: ask git."""
    try:
        repo = open_repository(cwd)
        if not _same_history_as_git(repo) or _ignores_case(repo):
            return None
        head = repo.revparse_single(ours).peel(pygit2.Commit)
        task = repo.revparse_single(theirs).peel(pygit2.Commit)
        base = _only_merge_base(repo, head, task)
        if base is None:
            return None
        trees = (base.tree_id, _TREE), (head.tree_id, _TREE), (task.tree_id, _TREE)
        merged = _TreeMerge(repo).folder(*trees)  # git always writes the root anew
        return None if merged is None else str(merged[0])
    except (*_LIBGIT2_ERRORS, UnicodeDecodeError, RecursionError, _TooBig):
        return None


# An entry of a tree: (object id, file mode); None where a tree has no such name.
Entry = tuple[pygit2.Oid, int]
# The modes git writes; a folder git writes anew holds no other (100664 becomes 100644).
_CANONICAL = frozenset({0o040000, 0o100644, 0o100755, 0o120000, 0o160000})
# Tree entries read at most for one merge: beyond, git (which reads them in C) is faster.
_READ_AT_MOST = 20_000


class _TooBig(Exception):
    pass


class _TreeMerge:
    """A trivial three-way merge of trees, as git's merge-ort resolves it, or None.

    At each name: the side that changed it, when the other did not; a folder both changed,
    merged name by name and written anew (entries sorted, modes canonical). Not trivial,
    so None: both changed a file (even alike: git then walks the change, renames and all),
    or either side deleted something or changed an entry's kind. A folder only one side
    changed is taken whole, as git takes it, once it is known to delete nothing."""

    def __init__(self, repo: pygit2.Repository) -> None:
        self.repo = repo
        self.read = 0
        self.checked: dict[tuple[pygit2.Oid, pygit2.Oid], bool] = {}

    def entry(self, base: Entry | None, ours: Entry | None, theirs: Entry | None) -> Entry | None:
        if theirs == base:
            return ours if ours == base else self.one_sided(base, ours)
        if ours == base:
            return self.one_sided(base, theirs)
        if ours == theirs or ours is None or theirs is None:
            return None
        if not all(e is None or e[1] == _TREE for e in (base, ours, theirs)):
            return None
        return self.folder(base, ours, theirs)

    def folder(self, base: Entry | None, ours: Entry, theirs: Entry) -> Entry | None:
        b, o, t = self.entries(base), self.entries(ours), self.entries(theirs)
        builder = self.repo.TreeBuilder()
        for name in sorted(b.keys() | o.keys() | t.keys()):
            merged = self.entry(b.get(name), o.get(name), t.get(name))
            if merged is None or merged[1] not in _CANONICAL:
                return None
            builder.insert(name, merged[0], merged[1])
        return builder.write(), _TREE

    def one_sided(self, base: Entry | None, side: Entry | None) -> Entry | None:
        """`side`, changed by one side only: None when it deleted anything or changed a kind."""
        if side is None:
            return None
        if base is not None and not self.deletes_nothing(base, side):
            return None
        return side

    def deletes_nothing(self, old: Entry, new: Entry) -> bool:
        if _kind(old) != _kind(new):
            return False
        if _kind(new) != _TREE or old == new:
            return True
        key = (old[0], new[0])
        if key not in self.checked:  # a subtree shared by many names is read once
            before, after = self.entries(old), self.entries(new)
            self.checked[key] = all(
                name in after and (after[name] == entry or self.deletes_nothing(entry, after[name]))
                for name, entry in before.items()
            )
        return self.checked[key]

    def entries(self, tree: Entry | None) -> dict[str, Entry]:
        if tree is None:
            return {}
        found: dict[str, Entry] = {}
        for entry in self.repo[tree[0]].peel(pygit2.Tree):
            if entry.raw_name is None:
                raise ValueError("a tree entry without a name")
            found[entry.raw_name.decode("utf-8")] = (entry.id, entry.filemode)  # else: git
        self.read += len(found)
        if self.read > _READ_AT_MOST:
            raise _TooBig
        return found


def _kind(entry: Entry) -> int:
    return entry[1] & 0o170000


def _foreign(commit: pygit2.Commit) -> bool:
    """A message in another encoding than UTF-8: git reads its trailers after re-encoding it,
    so bytes alone do not tell (UTF-7 spells `t1` as `+AHQAMQ-`)."""
    encoding = commit.message_encoding
    return encoding is not None and encoding.replace("-", "").lower() != "utf8"


def _same_history_as_git(repo: pygit2.Repository) -> bool:
    """Whether git would walk the same commits libgit2 does: no grafts of a shallow clone, no
    replaced objects, no configuration libgit2 does not read."""
    if any(name in os.environ for name in GIT_CONFIG_VARIABLES):
        return False
    common = shared_git_dir(Path(repo.path))
    if (common / "shallow").exists():  # libgit2 says "not shallow" for a shallow's worktree
        return False
    if (common / "refs" / "replace").exists() or (common / "info" / "grafts").exists():
        return False
    return not _packs_replace_refs(common / "packed-refs")


# packed-refs read for `refs/replace/`, by (path, inode, size, modification time): a clone
# with many tags has megabytes of it, asked twice per landing under the clone's lock.
_packed_replace: dict[tuple[str, int, int, int], bool] = {}


def _packs_replace_refs(packed: Path) -> bool:
    try:
        found = packed.stat()
    except FileNotFoundError:
        return False
    key = (str(packed), found.st_ino, found.st_size, found.st_mtime_ns)
    if key not in _packed_replace:
        if len(_packed_replace) >= 64:
            _packed_replace.clear()
        _packed_replace[key] = b" refs/replace/" in packed.read_bytes()
    return _packed_replace[key]


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
