"""Publishing to a home on this machine in-process: the execution branch pushed to a bare
repository by copying the objects it lacks and moving its ref forward (libgit2).

A `git push` to a local bare repository starts a git, a receive-pack and an index-pack, some
20 ms for every task that lands; the copy takes about a millisecond. It is what the push
does, fast-forward only: a home whose branch has moved past `commit` is fine (a later landing
pushed first), one that went elsewhere is left to `git push`, which fails with git's words.
Anything else this cannot do (a home that is not a bare repository here, objects it cannot
read) is also left to `git push` (activities/home.py), so nothing is ever half done here
that git would have done otherwise: the ref moves last, once every object is there.
"""

from __future__ import annotations

from pathlib import Path

import pygit2

from activities.git import GitError, open_repository

COMMIT_MODE = 0o160000  # a submodule's commit in a tree: not an object of this repository
# How often a ref moved by another landing meanwhile is read again.
ATTEMPTS = 20


def push_to_local_home(clone: Path, home: Path, branch: str, commit: str) -> str | None:
    """`commit` as refs/heads/<branch> in the bare repository `home`. Returns the branch's
    head there afterwards (`commit`, or a later head containing it); None when `git push`
    should do it instead."""
    try:
        source = open_repository(clone)
        target = pygit2.Repository(str(home))
        if not target.is_bare or Path(target.path).resolve() != home.resolve():
            return None  # not a bare repository, or one found above it
        oid = pygit2.Oid(hex=commit)
        _copy_missing(source, target, oid)
        return _move_forward(source, target, f"refs/heads/{branch}", oid)
    except (GitError, pygit2.GitError, KeyError, ValueError, OSError):
        return None


def _copy_missing(source: pygit2.Repository, target: pygit2.Repository, oid: pygit2.Oid) -> None:
    """Every object reachable from `oid` that `target` lacks, children before parents: an
    object in `target` always has everything below it, even after a copy cut short (a full
    disk, a kill), so a commit or tree it has is taken to be whole (as a push negotiates)."""
    found: list[pygit2.Object] = []
    seen: set[pygit2.Oid] = set()
    todo = [oid]
    while todo:
        current = todo.pop()
        if current in seen or current in target:
            continue
        seen.add(current)
        obj = source[current]
        found.append(obj)
        if isinstance(obj, pygit2.Commit):
            todo.extend([obj.tree_id, *obj.parent_ids])
        elif isinstance(obj, pygit2.Tree):
            todo.extend(entry.id for entry in obj if entry.filemode != COMMIT_MODE)
    # Found parents first (each before what it points at): written the other way round.
    for obj in reversed(found):
        target.odb.write(obj.type, obj.read_raw())


def _move_forward(
    source: pygit2.Repository, target: pygit2.Repository, ref: str, oid: pygit2.Oid
) -> str | None:
    for _ in range(ATTEMPTS):
        try:
            current = target.lookup_reference(ref)
        except KeyError:
            try:
                target.create_reference_direct(ref, oid, False)  # refused if made meanwhile
            except (pygit2.AlreadyExistsError, pygit2.GitError):
                continue
            return str(oid)
        head = current.target
        if not isinstance(head, pygit2.Oid):
            return None  # a symbolic ref: git's business
        if head == oid or source.descendant_of(head, oid):
            return str(head)  # there already, or a later head that contains it
        if not source.descendant_of(oid, head):
            return None  # not a fast-forward: git push refuses it, with its words
        try:
            current.set_target(oid)  # refused when the ref moved since it was read
        except pygit2.GitError:
            continue
        return str(oid)
    return None
