"""Checkouts in-process (activities/git_checkout.py): what git would write, or nothing at all
and git does it (a repository with attributes, submodules or configuration that changes how
files are written; a local change in the way)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from activities import git_checkout
from activities.git_checkout import fill_new_worktree, follow_branch
from tests.engine_support import git, make_repo

FILES = {
    "README.md": "hello\n",
    "src/app.py": "print('hi')\n",
    "src/deep/er/x.txt": "x\n",
    "a[1].txt": "a pattern's characters, a name here\n",
    "a1.txt": "what the pattern a[1].txt would match\n",
}


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    identity = ("-c", "user.name=t", "-c", "user.email=t@t")
    git(repo, *identity, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo", FILES)
    (repo / "run.sh").write_text("#!/bin/sh\necho run\n")
    (repo / "run.sh").chmod(0o755)
    os.symlink("src/app.py", repo / "link.py")
    commit_all(repo, "more")
    return repo


def new_worktree(repo: Path, name: str) -> Path:
    path = repo.parent / name
    git(repo, "worktree", "add", "-q", "--no-checkout", "-b", name, str(path))
    return path


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file and link under `root` (not .git): its content or target, and its mode."""
    found = {}
    for path in sorted(root.rglob("*")):
        if ".git" in path.relative_to(root).parts or (path.is_dir() and not path.is_symlink()):
            continue
        mode = os.lstat(path).st_mode
        content = os.readlink(path) if path.is_symlink() else path.read_text()
        found[str(path.relative_to(root))] = (content, stat.S_IMODE(mode) & 0o111)
    return found


def test_a_new_worktree_gets_what_git_reset_hard_writes(repo: Path) -> None:
    ours, gits = new_worktree(repo, "ours"), new_worktree(repo, "gits")
    assert fill_new_worktree(ours)
    git(gits, "reset", "--hard", "--quiet")

    assert snapshot(ours) == snapshot(gits)
    assert os.readlink(ours / "link.py") == "src/app.py"
    assert git(ours, "status", "--porcelain") == ""
    assert git(ours, "ls-files", "--stage") == git(gits, "ls-files", "--stage")


@pytest.mark.parametrize(
    "make_it_special",
    [
        lambda repo: (repo / ".gitattributes").write_text("*.txt filter=lfs\n"),
        lambda repo: (repo / "src" / ".gitattributes").write_text("*.py text eol=crlf\n"),
        lambda repo: git(repo, "config", "core.autocrlf", "true"),
        lambda repo: git(repo, "config", "core.sparseCheckout", "true"),
        lambda repo: (repo / ".git" / "info" / "attributes").write_text("* filter=x\n"),
    ],
    ids=["attributes", "nested-attributes", "autocrlf", "sparse", "info-attributes"],
)
def test_anything_that_changes_how_files_are_written_is_left_to_git(
    repo: Path, make_it_special: object
) -> None:
    assert callable(make_it_special)
    make_it_special(repo)
    commit_all(repo, "special")
    worktree = new_worktree(repo, "w")
    assert not fill_new_worktree(worktree)
    assert [p.name for p in worktree.iterdir()] == [".git"]  # nothing written

    head = git(repo, "rev-parse", "HEAD")
    (repo / "README.md").write_text("changed\n")
    new = commit_all(repo, "change")
    git(repo, "reset", "-q", "--keep", head)
    assert not follow_branch(repo, git(repo, "branch", "--show-current"), head, new)
    assert git(repo, "rev-parse", "HEAD") == head


def test_a_submodule_is_left_to_git(repo: Path, tmp_path: Path) -> None:
    other = make_repo(tmp_path / "other")
    sha = git(other, "rev-parse", "HEAD")
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{sha},vendor/other")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "sub")
    assert not fill_new_worktree(new_worktree(repo, "w"))


def test_the_clone_follows_its_branch_as_git_reset_keep_does(repo: Path) -> None:
    branch = git(repo, "branch", "--show-current")
    old = git(repo, "rev-parse", "HEAD")
    (repo / "src" / "app.py").write_text("print('changed')\n")
    (repo / "a[1].txt").write_text("changed\n")
    (repo / "src" / "deep" / "er" / "x.txt").unlink()
    (repo / "new" / "dir").mkdir(parents=True)
    (repo / "new" / "dir" / "n.txt").write_text("new\n")
    new = commit_all(repo, "task")
    git(repo, "reset", "-q", "--keep", old)
    local = "a local change the move does not touch\n"
    (repo / "README.md").write_text(local)
    reference = new_worktree(repo, "reference")
    git(reference, "reset", "-q", "--hard", new)
    expected = {**snapshot(reference), "README.md": (local, 0)}

    # More files than the caller allows here (four): left to it, nothing changed.
    before = snapshot(repo)
    assert not follow_branch(repo, branch, old, new, at_most=3)
    assert git(repo, "rev-parse", "HEAD") == old and snapshot(repo) == before
    assert follow_branch(repo, branch, old, new, at_most=4)

    assert git(repo, "rev-parse", "HEAD") == new
    # Only the named files: a1.txt, which the pattern a[1].txt would match, is untouched.
    assert snapshot(repo) == expected
    assert git(repo, "status", "--porcelain") == "M README.md"


def test_a_local_change_in_the_way_changes_nothing(repo: Path) -> None:
    branch = git(repo, "branch", "--show-current")
    old = git(repo, "rev-parse", "HEAD")
    (repo / "README.md").write_text("from the task\n")
    new = commit_all(repo, "task")
    git(repo, "reset", "-q", "--keep", old)
    (repo / "README.md").write_text("edited by hand\n")

    assert not follow_branch(repo, branch, old, new)
    assert git(repo, "rev-parse", "HEAD") == old
    assert (repo / "README.md").read_text() == "edited by hand\n"


def test_a_branch_that_moved_meanwhile_is_put_back_as_it_was(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    branch = git(repo, "branch", "--show-current")
    old = git(repo, "rev-parse", "HEAD")
    (repo / "README.md").write_text("from the task\n")
    new = commit_all(repo, "task")
    git(repo, "reset", "-q", "--keep", old)
    monkeypatch.setattr(git_checkout, "set_ref", lambda *args: False)

    assert not follow_branch(repo, branch, old, new)
    assert git(repo, "rev-parse", "HEAD") == old
    assert (repo / "README.md").read_text() == FILES["README.md"]
    assert git(repo, "status", "--porcelain") == ""


def test_a_git_configuration_libgit2_would_not_read_is_left_to_git(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "operator.gitconfig"
    config.write_text("[core]\n\tautocrlf = true\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    assert not fill_new_worktree(new_worktree(repo, "w"))


@pytest.mark.parametrize("ignored", [False, True])
def test_a_link_left_in_the_clone_is_never_written_through(
    repo: Path, tmp_path: Path, ignored: bool
) -> None:
    """A gate on the branch (code a task wrote) leaves `cfg` -> a folder outside the clone;
    the next merge adds cfg/evil: libgit2 would write it out there. git is left to refuse."""
    branch = git(repo, "branch", "--show-current")
    old = git(repo, "rev-parse", "HEAD")
    (repo / "cfg").mkdir()
    (repo / "cfg" / "evil").write_text("[Desktop Entry]\n")
    new = commit_all(repo, "task")
    git(repo, "reset", "-q", "--keep", old)
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "cfg").symlink_to(outside)
    if ignored:
        (repo / ".git" / "info" / "exclude").write_text("cfg\n")

    assert not follow_branch(repo, branch, old, new)
    assert list(outside.iterdir()) == [] and git(repo, "rev-parse", "HEAD") == old


def test_another_umask_is_left_to_git(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(git_checkout, "process_umask", lambda: 0o002)
    assert not fill_new_worktree(new_worktree(repo, "w"))
