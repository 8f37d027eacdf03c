"""Clones kept open by `activities.git.open_repository`: the same one while it is the same
clone, a new one once the clone was made again, never a worktree or another thread's."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from activities.git import open_repository
from activities.git_objects import resolve
from tests.engine_support import git, make_repo


def test_a_clone_is_kept_open_and_sees_what_git_changes(tmp_path: Path) -> None:
    clone = make_repo(tmp_path / "clone")
    first = open_repository(clone)
    assert open_repository(clone) is first
    # Refs and objects git writes meanwhile are read from disk.
    (clone / "new.txt").write_text("new\n")
    git(clone, "add", "new.txt")
    git(clone, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "new")
    assert resolve(clone, "HEAD") == git(clone, "rev-parse", "HEAD")


def test_a_clone_made_again_at_the_same_place_is_opened_anew(tmp_path: Path) -> None:
    clone = make_repo(tmp_path / "clone")
    before = open_repository(clone)
    shutil.rmtree(clone)
    make_repo(clone, {"other.txt": "another repository\n"})
    after = open_repository(clone)
    assert after is not before
    assert resolve(clone, "HEAD") == git(clone, "rev-parse", "HEAD")


def test_worktrees_and_other_threads_get_their_own(tmp_path: Path) -> None:
    clone = make_repo(tmp_path / "clone")
    worktree = tmp_path / "wt"
    git(clone, "worktree", "add", "-q", "-b", "t", str(worktree))
    assert open_repository(worktree) is not open_repository(worktree)
    kept = open_repository(clone)
    found = []
    thread = threading.Thread(target=lambda: found.append(open_repository(clone)))
    thread.start()
    thread.join()
    assert found and found[0] is not kept


def test_a_folder_without_its_own_git_is_not_taken_for_a_clone(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "project")
    lost = project / "workspaces" / "wt"  # a worktree's folder whose .git file is gone
    lost.mkdir(parents=True)
    assert open_repository(lost) is not open_repository(lost)
