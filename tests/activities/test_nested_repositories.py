"""A git repository a specialist leaves inside its worktree (a library cloned to read it, a
project scaffolded with its own `git init`): the task's commit is refused, naming it, and
nothing is lost; once its .git is gone, its files are committed (real git throughout)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from activities.git_objects import changed_paths, tree_deltas
from activities.nested_repositories import added_gitlinks
from activities.worktree_commit import _deltas_by_git
from activities.worktree_git import git_waiting
from coordinator.branches import TaskWorktree
from coordinator.nested_repositories import nested_left
from tests.activities.worktree_support import (
    Execution,
    git,
    landing,
    run,
    write,
)


def nested(wt: TaskWorktree, folder: str, *, commit: bool = True) -> Path:
    """A repository of its own at `folder` in the worktree, with a commit or without."""
    root = Path(wt.path) / folder
    root.mkdir(parents=True)
    git(root, "init", "-q")
    (root / "lib.py").write_text("def f():\n    return 1\n")
    if commit:
        git(root, "add", "-A")
        git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "lib")
    return root


def tree_of(ex: Execution) -> str:
    return git(ex.clone, "ls-tree", "-r", "--format=%(objectmode) %(path)", "HEAD")


async def test_a_repository_with_a_commit_is_refused_not_linked(ex: Execution) -> None:
    wt = await ex.create("t1")
    write(wt, {"app.py": "import vendor.lib\n"})
    nested(wt, "vendor/lib")
    before = git(wt.path, "rev-parse", "HEAD")

    refused = await ex.commit(wt, "t1")

    assert refused.commit is None and not refused.no_changes
    assert refused.nested == ["vendor/lib"]
    assert git(wt.path, "rev-parse", "HEAD") == before  # nothing committed
    assert (Path(wt.path) / "app.py").exists()  # nothing lost


async def test_a_repository_without_a_commit_is_refused_not_an_error(ex: Execution) -> None:
    """`git add -A` fails outright on one ("does not have a commit checked out")."""
    wt = await ex.create("t1")
    write(wt, {"app.py": "x = 1\n"})
    nested(wt, "web", commit=False)

    refused = await ex.commit(wt, "t1")

    assert refused.commit is None and refused.nested == ["web"]


async def test_without_its_git_folder_its_files_are_committed(ex: Execution) -> None:
    """The way out the message gives: the next attempt deletes the folder's .git."""
    wt = await ex.create("t1")
    root = nested(wt, "vendor/lib")
    assert (await ex.commit(wt, "t1")).nested == ["vendor/lib"]  # staged as a link by now

    shutil.rmtree(root / ".git")
    committed = await ex.commit(wt, "t1", attempt=2)

    assert committed.commit is not None and committed.files_changed == ["vendor/lib/lib.py"]
    assert (await ex.merge("t1")).merged
    assert "100644 vendor/lib/lib.py" in tree_of(ex)
    assert "160000" not in tree_of(ex)


async def test_an_ignored_repository_is_left_alone(ex: Execution) -> None:
    wt = await ex.create("t1")
    write(wt, {".gitignore": "scratch/\n", "app.py": "x = 1\n"})
    nested(wt, "scratch/clone")
    nested(wt, "scratch/empty", commit=False)

    committed = await ex.commit(wt, "t1")

    assert committed.commit is not None and not committed.nested
    assert sorted(committed.files_changed) == [".gitignore", "app.py"]


async def test_a_declared_submodule_is_committed(ex: Execution, tmp_path: Path) -> None:
    """`git submodule add` (possible where commands run unjailed) is a submodule."""
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    git(upstream, "init", "-q")
    (upstream / "lib.py").write_text("x = 1\n")
    git(upstream, "add", "-A")
    git(upstream, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "lib")
    wt = await ex.create("t1")
    add = ("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(upstream), "deps/up")
    git(wt.path, *add)

    committed = await ex.commit(wt, "t1")

    assert committed.commit is not None and not committed.nested
    assert sorted(committed.files_changed) == [".gitmodules", "deps/up"]


async def test_the_landing_stops_at_the_refusal(ex: Execution) -> None:
    """The task's turn lands in one activity: refused there, nothing merged or removed."""
    wt = await ex.create("t1")
    write(wt, {"app.py": "x = 1\n"})
    nested(wt, "one")
    nested(wt, "two", commit=False)
    head = ex.head()

    landed = await run(ex.acts.land_task, landing(ex, wt, "t1"))

    assert landed.merged is None and not landed.removed
    assert landed.committed.commit is None
    assert landed.committed.nested == ["two"]  # what made `git add -A` fail
    assert ex.head() == head and Path(wt.path).is_dir()
    assert await git_waiting("status", "--porcelain", cwd=Path(wt.path))  # work kept


def test_the_message_names_the_folders_and_the_ways_out() -> None:
    one = nested_left(["vendor/lib"])
    assert "vendor/lib/ is a git repository of its own" in one
    assert "rm -rf -- ./vendor/lib/.git" in one and ".gitignore" in one
    many = nested_left([f"r{k}" for k in range(12)])
    assert "are git repositories of their own" in many and "and 2 more" in many


def test_the_command_in_the_message_removes_only_that_git_folder(tmp_path: Path) -> None:
    """Run as written, even for a name with a space, a leading dash or a glob."""
    for name in ("my lib", "-x", "a*"):
        (tmp_path / name / ".git").mkdir(parents=True)
    (tmp_path / "my" / ".git").mkdir(parents=True)
    (tmp_path / "ab" / ".git").mkdir(parents=True)
    for name in ("my lib", "-x", "a*"):
        command = nested_left([name]).split("(rm", 1)[1].split(")", 1)[0]
        subprocess.run("rm" + command, shell=True, cwd=tmp_path, check=True)
        assert not (tmp_path / name / ".git").exists()
    assert (tmp_path / "my" / ".git").is_dir() and (tmp_path / "ab" / ".git").is_dir()


async def test_a_repository_the_specialist_committed_itself_is_refused_and_recovers(
    ex: Execution,
) -> None:
    """The branch's head holds the link already: the refusal puts the index back as the
    base has it, so deleting the .git then commits the files."""
    wt = await ex.create("t1")
    root = nested(wt, "vendor/lib")
    git(wt.path, "add", "-A")
    git(wt.path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "mine")
    assert (await ex.commit(wt, "t1")).nested == ["vendor/lib"]

    shutil.rmtree(root / ".git")
    committed = await ex.commit(wt, "t1", attempt=2)

    assert committed.commit is not None and committed.files_changed == ["vendor/lib/lib.py"]


@pytest.mark.parametrize(
    ("gitmodules", "declared"),
    [
        ('[submodule "lib"]\n\tpath = vendor/lib\n\turl = https://example.com/lib.git\n', True),
        ('[submodule "lib"]\n\tPath = vendor/lib ; a comment\n\turl = ../lib.git\n', True),
        ("[core]\n\tpath = vendor/lib\n", False),  # core.path: no submodule
        ('[submodule "lib"]\n\tpath = vendor/lib\n', False),  # nowhere to fetch it from
    ],
)
async def test_a_submodule_counts_as_declared_as_git_reads_gitmodules(
    ex: Execution, gitmodules: str, declared: bool
) -> None:
    wt = await ex.create("t1")
    nested(wt, "vendor/lib")
    write(wt, {".gitmodules": gitmodules})

    committed = await ex.commit(wt, "t1")

    assert (committed.commit is not None, committed.nested) == (
        (True, []) if declared else (False, ["vendor/lib"])
    )


async def test_git_add_failing_for_another_reason_says_so(ex: Execution) -> None:
    """A repository with a commit did not make `git add -A` fail: git's own words stand."""
    git(ex.clone, "config", "filter.broken.clean", "false")
    git(ex.clone, "config", "filter.broken.required", "true")
    wt = await ex.create("t1")
    write(wt, {".gitattributes": "*.bin filter=broken\n", "data.bin": "x"})
    nested(wt, "web")

    with pytest.raises(Exception, match="clean filter 'broken' failed"):
        await ex.commit(wt, "t1")


async def test_a_repository_it_cannot_read_does_not_hold_the_commit(ex: Execution) -> None:
    """Refused from git's own words: no repository the agent made is opened to ask (a named
    pipe as its configuration would hold the worker), whatever else is there."""
    wt = await ex.create("t1")
    nested(wt, "empty", commit=False)
    config = nested(wt, "piped") / ".git" / "config"
    config.unlink()
    os.mkfifo(config)

    refused = await ex.commit(wt, "t1")

    assert refused.commit is None and refused.nested == ["empty"]


async def test_a_declaration_git_submodules_would_not_see_is_no_declaration(
    ex: Execution, tmp_path: Path
) -> None:
    """An `[include]` in .gitmodules: git's submodules never follow it, nor does the check
    (which would read any file the agent names)."""
    outside = tmp_path / "outside.cfg"
    outside.write_text('[submodule "lib"]\n\tpath = vendor/lib\n\turl = ../lib.git\n')
    wt = await ex.create("t1")
    nested(wt, "vendor/lib")
    write(wt, {".gitmodules": f"[include]\n\tpath = {outside}\n"})

    assert (await ex.commit(wt, "t1")).nested == ["vendor/lib"]


async def test_git_tells_the_same_changes_where_libgit2_cannot(ex: Execution) -> None:
    """The commit's one diff (its files, the new links) asked of git instead: the same
    files, and the same link found."""
    wt = await ex.create("t1")
    write(wt, {"new.txt": "new\n"})
    nested(wt, "vendor/lib")
    git(wt.path, "add", "-A")
    tree = git(wt.path, "write-tree")
    by_libgit2 = tree_deltas(Path(wt.path), wt.base_commit, tree)
    by_git = await _deltas_by_git(Path(wt.path), wt.base_commit, tree)

    assert by_libgit2 is not None
    assert changed_paths(by_git) == changed_paths(by_libgit2) == ["new.txt", "vendor/lib"]
    for deltas in (by_git, by_libgit2):
        assert await added_gitlinks(Path(wt.path), tree, deltas) == ["vendor/lib"]
