"""Publishing to a bare home on this machine in-process (activities/home_copy.py): what a
fast-forward `git push` leaves there, and `git push`'s turn whenever it is not that."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pygit2
import pytest

from activities.home import publish_commit
from activities.home_copy import push_to_local_home
from tests.activities.worktree_support import BRANCH, Execution, git


def bare(tmp_path: Path, name: str = "home.git") -> Path:
    home = tmp_path / name
    subprocess.run(["git", "init", "-q", "--bare", str(home)], check=True)
    return home


async def test_a_new_branch_arrives_whole(ex: Execution, tmp_path: Path) -> None:
    first = (await ex.land("t1", {"a.txt": "a\n", "deep/er/b.txt": "b\n"})).head
    home = bare(tmp_path)

    assert push_to_local_home(ex.clone, home, BRANCH, first) == first

    assert git(home, "rev-parse", BRANCH) == first
    assert git(home, "fsck", "--strict", "--no-dangling") == ""
    assert git(home, "show", f"{BRANCH}:deep/er/b.txt") == "b"
    # The next task: only what the home lacks is copied, and the branch moves forward.
    second = (await ex.land("t2", {"c.txt": "c\n"})).head
    assert push_to_local_home(ex.clone, home, BRANCH, second) == second
    assert git(home, "log", "--format=%s", BRANCH).splitlines() == [
        "t2: do t2",
        "t1: do t1",
        "init",
    ]
    assert git(home, "fsck", "--strict", "--no-dangling") == ""


async def test_a_home_already_past_the_commit_stays_where_it_is(
    ex: Execution, tmp_path: Path
) -> None:
    first = (await ex.land("t1", {"a.txt": "a\n"})).head
    second = (await ex.land("t2", {"b.txt": "b\n"})).head
    home = bare(tmp_path)
    assert push_to_local_home(ex.clone, home, BRANCH, second) == second

    # A landing that pushes late finds a later head containing its commit: fine.
    assert push_to_local_home(ex.clone, home, BRANCH, first) == second
    assert git(home, "rev-parse", BRANCH) == second


async def test_a_home_that_went_elsewhere_is_left_to_git_push(
    ex: Execution, tmp_path: Path
) -> None:
    head = (await ex.land("t1", {"a.txt": "a\n"})).head
    home = bare(tmp_path)
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(ex.clone), str(other)], check=True)
    git(other, "checkout", "-q", "-b", "elsewhere", ex.workspace.base_commit)
    (other / "x.txt").write_text("x\n")
    git(other, "add", "-A")
    git(other, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "other")
    git(other, "push", "-q", str(home), f"HEAD:refs/heads/{BRANCH}")
    elsewhere = git(other, "rev-parse", "HEAD")

    assert push_to_local_home(ex.clone, home, BRANCH, head) is None  # not a fast-forward
    assert git(home, "rev-parse", BRANCH) == elsewhere  # untouched


async def test_only_a_bare_repository_is_written_in_process(ex: Execution, tmp_path: Path) -> None:
    head = (await ex.land("t1", {"a.txt": "a\n"})).head
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    assert push_to_local_home(ex.clone, work, BRANCH, head) is None
    assert push_to_local_home(ex.clone, tmp_path / "nothing", BRANCH, head) is None
    # publish_commit then pushes as git does: a home that does not exist yet is made bare.
    made = tmp_path / "made.git"
    assert await publish_commit(ex.clone, BRANCH, str(made), head) == head
    assert git(made, "rev-parse", BRANCH) == head


async def test_a_copy_cut_short_leaves_no_commit_without_its_tree(
    ex: Execution, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Objects are written children first: a copy that stops half-way (a full disk, a kill)
    leaves nothing that names a missing object, and the next push brings the rest."""
    head = (await ex.land("t1", {"deep/er/a.txt": "a\n", "b.txt": "b\n"})).head
    home = bare(tmp_path)

    room = [2]  # objects the disk takes before it is full

    class Full:
        def __init__(self, odb: pygit2.Odb) -> None:
            self.odb = odb

        def write(self, kind: int, data: bytes) -> pygit2.Oid:
            if room[0] == 0:
                raise OSError(28, "No space left on device")
            room[0] -= 1
            return self.odb.write(kind, data)

    class Cramped(pygit2.Repository):
        @property
        def odb(self) -> Any:  # type: ignore[override]
            return Full(super().odb)

    with monkeypatch.context() as patch:
        patch.setattr(pygit2, "Repository", Cramped)
        assert push_to_local_home(ex.clone, home, BRANCH, head) is None
    assert git(home, "fsck", "--no-dangling", "--connectivity-only") == ""

    assert push_to_local_home(ex.clone, home, BRANCH, head) == head
    assert git(home, "fsck", "--strict", "--no-dangling") == ""
    assert git(home, "show", f"{BRANCH}:deep/er/a.txt") == "a"
