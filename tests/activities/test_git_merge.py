"""In-process answers to the landing's two questions (activities/git_merge.py): the tree
`git merge-tree` writes when the sides touched different files, and whether a commit since the
base can name the task; compared with git itself, and left to git wherever they could differ."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pygit2
import pytest
from pygit2.enums import FileMode

from activities.git_merge import disjoint_merge, might_have_landed
from tests.engine_support import git, make_repo

FILES = {
    "README.md": "hello\n",
    "src/app.py": "print('hi')\n",
    "src/lib/util.py": "def f():\n    return 1\n",
    "docs/guide.md": "guide\n",
}
IDENTITY = ("-c", "user.name=t", "-c", "user.email=t@t")


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, *IDENTITY, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


Change = Callable[[Path], None]
Sides = tuple[list[list[Change]], list[list[Change]]]


def write(path: str, text: str, mode: int | None = None) -> Change:
    def change(root: Path) -> None:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
        if mode is not None:
            (root / path).chmod(mode)

    return change


def link(path: str, target: str) -> Change:
    return lambda root: os.symlink(target, root / path)


def delete(path: str) -> Change:
    def change(root: Path) -> None:
        git(root, "rm", "-q", "-r", path)

    return change


def sides(repo: Path, ours: list[list[Change]], theirs: list[list[Change]]) -> None:
    """Branch `exec` and `task` from the current commit, each with one commit per list."""
    base = git(repo, "rev-parse", "HEAD")
    for branch, commits in (("exec", ours), ("task", theirs)):
        git(repo, "checkout", "-q", "-b", branch, base)
        for number, changes in enumerate(commits):
            for change in changes:
                change(repo)
            commit_all(repo, f"{branch} {number}")
    git(repo, "checkout", "-q", "--detach", base)


def git_tree(repo: Path) -> str:
    out = git(repo, "merge-tree", "--write-tree", "--name-only", "exec", "task")
    return out.splitlines()[0]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", FILES)


DISJOINT: dict[str, Sides] = {
    "new folder beside a change": (
        [[write("src/app.py", "print('hey')\n")]],
        [[write("new/deep/a.txt", "a\n")]],
    ),
    "same folder": ([[write("src/b.py", "b\n")]], [[write("src/app.py", "x\n")]]),
    "modes and links": (
        [[write("README.md", "hello\n", 0o755)]],
        [[write("run.sh", "#!/bin/sh\n", 0o755), link("src/lib/l.py", "util.py")]],
    ),
    "head moved by several commits": (
        [[write("a.txt", "a\n")], [write("b/c.txt", "c\n")], [write("docs/guide.md", "g2\n")]],
        [[write("src/lib/more.py", "m\n")]],
    ),
    "two task commits": (
        [[write("x.txt", "x\n")]],
        [[write("y.txt", "y\n")], [write("z/y.txt", "z\n")]],
    ),
    "nothing on the head's side": ([], [[write("only.txt", "o\n")]]),
    "nothing on the task's side": ([[write("only.txt", "o\n")]], [[]]),
    "different files of one deep folder": (
        [[write("src/lib/a.py", "a\n"), write("src/lib/deeper/b.py", "b\n")]],
        [[write("src/lib/c.py", "c\n"), write("src/lib/deeper/d.py", "d\n")]],
    ),
}


@pytest.mark.parametrize("case", DISJOINT)
def test_disjoint_changes_merge_as_git_merges_them(repo: Path, case: str) -> None:
    ours, theirs = DISJOINT[case]
    sides(repo, ours, theirs)
    assert disjoint_merge(repo, "exec", "task") == git_tree(repo)


LEFT_TO_GIT: dict[str, Sides] = {
    "same file": ([[write("src/app.py", "a\n")]], [[write("src/app.py", "b\n")]]),
    "the same change on both sides": ([[write("n.txt", "n\n")]], [[write("n.txt", "n\n")]]),
    "the same folder on both sides, after a rename each": (
        [[delete("src/lib/util.py"), write("b/util.py", "def f():\n    return 1\n")]],
        [[delete("src/lib/util.py"), write("c/util.py", "def f():\n    return 1\n")]],
    ),
    "both delete the same file": (
        [[delete("README.md"), write("a.txt", "a\n")]],
        [[delete("README.md"), write("b.txt", "b\n")]],
    ),
    "head deletes, task adds elsewhere": ([[delete("docs/guide.md")]], [[write("b.txt", "b\n")]]),
    "task deletes": ([[write("a.txt", "a\n")]], [[delete("docs/guide.md")]]),
    "head renamed the folder the task adds to": (
        [[delete("src/lib"), write("lib2/util.py", "def f():\n    return 1\n")]],
        [[write("src/lib/new.py", "n\n")]],
    ),
    "a file where the other has a folder": (
        [[write("x", "file\n")]],
        [[write("x/y", "in folder\n")]],
    ),
    "file turned link": (
        [[write("a.txt", "a\n")]],
        [[delete("README.md"), link("README.md", "docs/guide.md")]],
    ),
}


@pytest.mark.parametrize("case", LEFT_TO_GIT)
def test_anything_else_is_left_to_git(repo: Path, case: str) -> None:
    ours, theirs = LEFT_TO_GIT[case]
    sides(repo, ours, theirs)
    assert disjoint_merge(repo, "exec", "task") is None


def commit_on(repo: Path, parent: str, branch: str, entries: dict[str, str | None]) -> None:
    """A commit of `parent`'s tree with root `entries` added (a file's text, or None: an
    empty folder, which git's index cannot hold but plumbing can), as `branch`."""
    r = pygit2.Repository(str(repo))
    tip = r.revparse_single(parent).peel(pygit2.Commit)
    builder = r.TreeBuilder(tip.tree)
    for name, text in entries.items():
        if text is None:
            builder.insert(name, r.TreeBuilder().write(), FileMode.TREE)
        else:
            builder.insert(name, r.create_blob(text.encode()), FileMode.BLOB)
    who = pygit2.Signature("t", "t@t")
    r.create_commit(f"refs/heads/{branch}", who, who, branch, builder.write(), [tip.id])


def test_empty_folders_are_kept_as_git_keeps_them(repo: Path) -> None:
    commit_on(repo, "main", "base", {"was-empty": None})  # in the base, kept by both sides
    commit_on(repo, "base", "exec", {"a.txt": "a\n"})
    commit_on(repo, "base", "task", {"b.txt": "b\n", "keep": None})  # added by the task
    tree = disjoint_merge(repo, "exec", "task")
    assert tree == git_tree(repo)
    assert {"was-empty", "keep"} <= set(git(repo, "ls-tree", "--name-only", str(tree)).split())


@pytest.mark.parametrize("head_moved", [True, False])
def test_a_legacy_mode_is_written_as_git_writes_it(repo: Path, head_moved: bool) -> None:
    """git writes the root (and folders both sides changed) with canonical modes only: an old
    tree's 100664 becomes 100644 there, as libgit2 reads it. Such a tree takes plumbing."""
    r = pygit2.Repository(str(repo))
    main = r.revparse_single("main").peel(pygit2.Commit)
    entries = [(str(e.name), int(e.filemode), e.id) for e in main.tree]
    entries.append(("old", 0o100664, r.create_blob(b"old\n")))

    def key(entry: tuple[str, int, pygit2.Oid]) -> str:  # git's order: a folder as "name/"
        return entry[0] + ("/" if entry[1] == FileMode.TREE else "")

    raw = b"".join(
        f"{mode:o} {name}".encode() + b"\0" + oid.raw
        for name, mode, oid in sorted(entries, key=key)
    )
    tree = (
        subprocess.run(
            ["git", "hash-object", "-t", "tree", "-w", "--literally", "--stdin"],
            cwd=repo,
            input=raw,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    git(
        repo,
        "update-ref",
        "refs/heads/base",
        git(repo, *IDENTITY, "commit-tree", "-p", "main", "-m", "legacy", tree),
    )
    if head_moved:
        commit_on(repo, "base", "exec", {"a.txt": "a\n"})
    else:
        git(repo, "branch", "exec", "base")
    commit_on(repo, "base", "task", {"b.txt": "b\n"})
    assert disjoint_merge(repo, "exec", "task") == git_tree(repo)


def test_a_subtree_shared_by_many_names_is_read_once(repo: Path) -> None:
    """Two names per level for the same folder, 22 levels deep: 4 million paths, 22 folders."""
    r = pygit2.Repository(str(repo))

    def tower(leaf: str) -> pygit2.Oid:
        folder = r.TreeBuilder()
        folder.insert("leaf.txt", r.create_blob(leaf.encode()), FileMode.BLOB)
        tree = folder.write()
        for _ in range(22):
            level = r.TreeBuilder()
            level.insert("a", tree, FileMode.TREE)
            level.insert("b", tree, FileMode.TREE)
            tree = level.write()
        return tree

    who = pygit2.Signature("t", "t@t")
    main = r.revparse_single("main").peel(pygit2.Commit)
    for branch, leaf, parent in (("base", "0", main), ("task", "1", None)):
        builder = r.TreeBuilder(main.tree)
        builder.insert("tower", tower(leaf), FileMode.TREE)
        tip = r.revparse_single("base").peel(pygit2.Commit) if parent is None else parent
        r.create_commit(f"refs/heads/{branch}", who, who, branch, builder.write(), [tip.id])
    commit_on(repo, "base", "exec", {"a.txt": "a\n"})
    assert disjoint_merge(repo, "exec", "task") == git_tree(repo)


def test_a_big_repository_merges_as_git_merges_it(tmp_path: Path) -> None:
    files = {f"pkg{n % 40}/mod{n}.py": f"x = {n}\n" for n in range(3000)}
    repo = make_repo(tmp_path / "big", files)
    sides(repo, [[write("pkg3/new.py", "a\n")]], [[write("pkg7/mod7.py", "changed\n")]])
    assert disjoint_merge(repo, "exec", "task") == git_tree(repo)


def test_a_merge_commit_on_the_task_side_is_left_to_git(repo: Path) -> None:
    sides(repo, [[write("a.txt", "a\n")]], [[write("b.txt", "b\n")]])
    git(repo, "checkout", "-q", "task")
    git(repo, "checkout", "-q", "-b", "side", "HEAD~1")
    write("c.txt", "c\n")(repo)
    commit_all(repo, "side")
    git(repo, "checkout", "-q", "task")
    git(repo, *IDENTITY, "merge", "-q", "--no-edit", "side")
    assert disjoint_merge(repo, "exec", "task") is None


@pytest.mark.parametrize("setting", ["replace", "packed replace", "ignorecase", "env"])
def test_repositories_git_reads_differently_are_left_to_git(
    repo: Path, setting: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sides(repo, [[write("a.txt", "a\n")]], [[write("b.txt", "b\n")]])
    assert disjoint_merge(repo, "exec", "task") is not None  # asked again below
    if setting.endswith("replace"):
        git(repo, "replace", git(repo, "rev-parse", "exec"), git(repo, "rev-parse", "exec~1"))
        if setting == "packed replace":  # in packed-refs only, read anew once it changed
            git(repo, "pack-refs", "--all")
            shutil.rmtree(repo / ".git" / "refs" / "replace", ignore_errors=True)
            assert b"refs/replace/" in (repo / ".git" / "packed-refs").read_bytes()
    elif setting == "ignorecase":
        git(repo, "config", "core.ignoreCase", "true")
    else:
        monkeypatch.setenv("GIT_CONFIG_COUNT", "0")
    assert disjoint_merge(repo, "exec", "task") is None


def test_no_repository_is_left_to_git(tmp_path: Path) -> None:
    assert disjoint_merge(tmp_path, "exec", "task") is None


def test_a_commit_naming_the_task_might_have_landed(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    message = "t1: first\n\nCoord-Task: t1\n"
    git(repo, *IDENTITY, "commit", "-q", "--allow-empty", "-m", message)
    git(repo, *IDENTITY, "commit", "-q", "--allow-empty", "-m", "t12: x\n\nCoord-Task: t12\n")
    head = git(repo, "rev-parse", "HEAD")
    assert might_have_landed(repo, base, head, "t1")
    assert might_have_landed(repo, base, head, "t12")
    # A longer id holding it is no mention, nor is a commit before the base.
    assert not might_have_landed(repo, base, head, "t")
    assert not might_have_landed(repo, git(repo, "rev-parse", "HEAD~1"), head, "t1")
    assert not might_have_landed(repo, base, head, "t1.2")


def test_a_message_in_another_encoding_is_left_to_git(repo: Path) -> None:
    """UTF-7 spells `t1` as `+AHQAMQ-`: git re-encodes before reading trailers, bytes do not
    tell, so any commit in another encoding is a "maybe"."""
    base = git(repo, "rev-parse", "HEAD")
    tree = git(repo, "rev-parse", "HEAD^{tree}")
    who = "t <t@t> 1700000000 -0100"
    body = f"tree {tree}\nparent {base}\nauthor {who}\ncommitter {who}\nencoding UTF-7\n\n"
    body += "x\n\nCoord-Task: +AHQAMQ-\n"
    commit = subprocess.run(
        ["git", "hash-object", "-t", "commit", "-w", "--stdin"],
        cwd=repo,
        input=body,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert might_have_landed(repo, base, commit, "t1")
    assert might_have_landed(repo, base, commit, "t2")  # a maybe: git decides


def test_a_worktree_of_a_shallow_clone_is_left_to_git(repo: Path, tmp_path: Path) -> None:
    """Cut below the merge base: libgit2 can read all it needs, but git walks another history
    in a shallow clone, and pygit2 calls a worktree of one "not shallow"."""
    write("pre.txt", "pre\n")(repo)
    commit_all(repo, "pre")
    sides(repo, [[write("a.txt", "a\n")]], [[write("b.txt", "b\n")]])
    shallow = tmp_path / "shallow"
    git(
        tmp_path,
        "clone",
        "-q",
        "--depth",
        "2",
        "--no-single-branch",
        f"file://{repo}",
        str(shallow),
    )
    git(shallow, "branch", "-q", "exec", "origin/exec")
    git(shallow, "branch", "-q", "task", "origin/task")
    git(shallow, "worktree", "add", "-q", str(tmp_path / "wt"), "exec")
    assert disjoint_merge(tmp_path / "wt", "exec", "task") is None
    head = git(shallow, "rev-parse", "exec")
    assert might_have_landed(tmp_path / "wt", f"{head}~1", head, "t1")


def test_when_libgit2_cannot_tell_git_is_asked(repo: Path, tmp_path: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    assert might_have_landed(repo, "no-such-commit", head, "t1")
    assert might_have_landed(tmp_path, head, head, "t1")
    git(repo, "replace", head, git(repo, "commit-tree", "-m", "x", f"{head}^{{tree}}"))
    assert might_have_landed(repo, head, head, "t1")
