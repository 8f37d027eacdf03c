"""Checkouts in-process (libgit2) where git would do exactly the same, and only there.

Two checkouts happen for every task: a new worktree gets its files (`git reset --hard`), and
the clone's checkout follows its branch after each merge (`git reset --keep`). Each is a git
process, some 5 ms, and the second one holds the clone's lock. libgit2 does the same work
in-process, but it runs no filter programs (`filter=` in .gitattributes: Git LFS, git-crypt)
and knows no sparse checkout. So it is used only for a plain repository: no .gitattributes
file anywhere in the trees checked out, no submodule, nothing in the configuration that
changes how files are written (`core.autocrlf`, `core.eol`, `core.attributesFile`,
`core.sparseCheckout`, `info/attributes`, a `GIT_CONFIG_*` variable git would read).
Nor where a file would be written through a symbolic link, or in place of one, in the
clone (a gate on the branch may leave one, pointing out of it: libgit2 would follow it), or
with a umask other than 022. Anything else, and anything libgit2 refuses (a local change in
the way), is left to git, which does it or fails with its own words, as before. Both
functions return False then, having changed nothing.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pygit2
from pygit2.enums import CheckoutStrategy, FileMode

from activities.git import GitError, open_repository, shared_git_dir
from activities.git_objects import set_ref

RULE_FILES = (".gitignore", ".gitattributes")  # read by libgit2 in every folder it writes in

# Configuration that changes how files are written on checkout (any value but these).
_CONFIG = {
    "core.autocrlf": ("false",),
    "core.eol": (),
    "core.attributesFile": (),
    "core.sparseCheckout": ("false",),
}
_SAFE = CheckoutStrategy.SAFE | CheckoutStrategy.DISABLE_PATHSPEC_MATCH
_FORCE = CheckoutStrategy.FORCE | CheckoutStrategy.DISABLE_PATHSPEC_MATCH
# The operator's git configuration outside the usual files (activities/git.py passes them to
# git; libgit2 does not read them).
GIT_CONFIG_VARIABLES = (
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_CONFIG_NOSYSTEM",
    "GIT_CONFIG_COUNT",
    "GIT_CONFIG_PARAMETERS",
)
# Attributes git reads besides the repository's own (system, then the user's).
_OTHER_ATTRIBUTES = (
    "/etc/gitattributes",
    "$XDG_CONFIG_HOME/git/attributes",
    "~/.config/git/attributes",
)
# Trees known to be plain (or not), by id: a tree's id is its content, so it never goes stale.
_plain_trees: dict[pygit2.Oid, bool] = {}
_REMEMBER_AT_MOST = 200_000


def fill_new_worktree(path: Path) -> bool:
    """The files and the index of the worktree at `path`, made without them, as `git reset
    --hard` would write them; False: left to git (nothing was written)."""
    try:
        repo = open_repository(path)
        tree = repo.head.peel(pygit2.Tree)
        if not plain_repository(repo) or not plain_tree(repo, tree):
            return False
        if any(True for _ in Path(repo.workdir).iterdir() if _.name != ".git"):
            return False  # not empty (a retry after a crash): git knows what to keep
        _check_out(repo, tree, _FORCE)
    except (GitError, pygit2.GitError, KeyError, ValueError, OSError, RecursionError):
        return False
    return True


def follow_branch(
    clone: Path, branch: str, old: str, new: str, *, at_most: int | None = None
) -> bool:
    """`git reset --keep new` in the clone, whose HEAD is `branch` at commit `old`: the files
    that differ between the two (and the index) updated, unless one has a local change, then
    the branch moved from `old` to `new`. False: left to git (nothing was changed), or to
    the caller when more than `at_most` files would be written."""
    try:
        repo = open_repository(clone)
        before = repo.revparse_single(old).peel(pygit2.Tree)
        after = repo.revparse_single(new).peel(pygit2.Tree)
        head = repo.head
        if head.name != f"refs/heads/{branch}" or str(head.target) != old:
            return False
        if not plain_repository(repo) or not (plain_tree(repo, before) and plain_tree(repo, after)):
            return False
        paths = [d.new_file.path or d.old_file.path for d in before.diff_to_tree(after).deltas]
        if at_most is not None and len(paths) > at_most:
            return False
        if not _only_folders_on_the_way(Path(repo.workdir), paths):
            return False
        if paths:
            # SAFE: a file with a local change (or an untracked one in the way) stops it
            # all, before anything is written. The paths are names, not patterns.
            _check_out(repo, after, _SAFE, paths)
        if not set_ref(clone, f"refs/heads/{branch}", new, old):
            if paths:  # put back what was just written: git does it all, or nothing
                _check_out(repo, before, _FORCE, paths)
            return False
    except (GitError, pygit2.GitError, KeyError, ValueError, OSError, RecursionError):
        return False
    return True


def _only_folders_on_the_way(root: Path, paths: list[str]) -> bool:
    """Whether writing `paths` under `root` goes through real folders only, and replaces no
    symbolic link: the clone's files are not the coordinator's alone (gates on the branch
    run there), and libgit2, unlike git, follows a link it finds on the way (an ignored or
    untracked one pointing out of the clone: a write outside it). The rule files it reads in
    those folders must be plain files too: it would follow a link there (git does not), and
    on the event loop's thread a pipe at its end would hold the worker."""
    if not _plain_rules(root):
        return False
    checked: set[str] = set()
    for path in paths:
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if prefix in checked:
                continue
            checked.add(prefix)
            try:
                mode = os.lstat(root / prefix).st_mode
            except FileNotFoundError:
                break  # made by the checkout itself, and everything below it
            if stat.S_ISLNK(mode) or (depth < len(parts) and not stat.S_ISDIR(mode)):
                return False
            if depth < len(parts) and not _plain_rules(root / prefix):
                return False
    return True


def _plain_rules(folder: Path) -> bool:
    """Whether the folder's `.gitignore` and `.gitattributes` are regular files or absent."""
    for name in RULE_FILES:
        try:
            if not stat.S_ISREG(os.lstat(folder / name).st_mode):
                return False
        except FileNotFoundError:
            continue
    return True


def _check_out(
    repo: pygit2.Repository,
    tree: pygit2.Tree,
    strategy: CheckoutStrategy,
    paths: list[str] | None = None,
) -> None:
    checkout: Callable[..., None] = repo.checkout_tree  # untyped in pygit2
    checkout(tree, strategy=strategy, paths=paths)


def plain_repository(repo: pygit2.Repository) -> bool:
    if any(name in os.environ for name in GIT_CONFIG_VARIABLES):
        return False  # git would read another configuration than libgit2 does
    if process_umask() != 0o022:
        return False  # libgit2 writes 0644/0755 whatever the umask; git follows it
    config = repo.config
    for key, harmless in _CONFIG.items():
        if key in config and str(config[key]).lower() not in harmless:
            return False
    files = [shared_git_dir(Path(repo.path)) / "info" / "attributes"]
    files += [Path(os.path.expanduser(os.path.expandvars(f))) for f in _OTHER_ATTRIBUTES]
    return not any(f.exists() for f in files if "$" not in str(f))


def process_umask() -> int | None:
    """The process's umask, as the kernel reports it (setting it to read it would race with
    other threads); None when it cannot tell."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def plain_tree(repo: pygit2.Repository, tree: pygit2.Tree) -> bool:
    """No .gitattributes and no submodule in `tree`, at any depth."""
    known = _plain_trees.get(tree.id)
    if known is not None:
        return known
    plain = True
    for entry in tree:
        if entry.name == ".gitattributes" or entry.filemode == FileMode.COMMIT:
            plain = False
        elif entry.filemode == FileMode.TREE:
            plain = plain_tree(repo, repo[entry.id].peel(pygit2.Tree))
        if not plain:
            break
    if len(_plain_trees) >= _REMEMBER_AT_MOST:
        _plain_trees.clear()
    _plain_trees[tree.id] = plain
    return plain
