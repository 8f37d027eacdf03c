"""Re-homing rewrites the paths a step request names on a former host, and nothing else
(workflows/placement.py: PATH_FIELDS)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from coordinator.branches import CommitRequest, MergeRequest
from coordinator.environment import CommandEnvironment
from coordinator.plan import Gate
from coordinator.report import Workspace
from coordinator.work import FollowThrough, SpecialistRequest
from workflows.placement import PATH_FIELDS, rebind

OLD = "/srv/host-a/ws/exec-1"
NEW = "/srv/host-b/ws/exec-1"


def moved_workspace() -> Workspace:
    return Workspace(
        path=f"{NEW}/clone",
        branch="coord/exec-1",
        base_branch="main",
        base_commit="a" * 40,
        head_commit="b" * 40,
        former_dirs=[OLD],
    )


def test_the_declared_paths_move_nested_and_in_lists_and_nothing_else() -> None:
    request = SpecialistRequest(
        execution_id="exec-1",
        task_id="t1",
        task_title="T",
        task_prompt=f"{OLD}/clone is where the old host kept it",  # prose: never rewritten
        specialist="impl",
        backend="claude",
        timeout_s=60,
        cwd=f"{OLD}/worktrees/t1",
        attempt=1,
        context_paths=[f"{OLD}/context/a.md", "/elsewhere/b.md"],
        environment=CommandEnvironment(env_dir=f"{OLD}/env", env_from=[f"{OLD}/env/.env"]),
        specialist_source=f"{OLD}/clone/.claude/agents/impl.md",
    )
    moved = rebind(moved_workspace(), request)
    assert moved.cwd == f"{NEW}/worktrees/t1"
    assert moved.context_paths == [f"{NEW}/context/a.md", "/elsewhere/b.md"]
    assert moved.environment is not None
    assert moved.environment.env_dir == f"{NEW}/env"
    assert moved.environment.env_from == [f"{NEW}/env/.env"]
    assert moved.specialist_source == f"{NEW}/clone/.claude/agents/impl.md"
    assert moved.task_prompt == request.task_prompt
    # A path that only starts with the same characters is another place.
    sibling = CommitRequest(worktree=f"{OLD}-2/worktrees/t1", task_id="t1", title="T")
    assert rebind(moved_workspace(), sibling) == sibling


def test_a_request_without_declared_paths_is_refused_by_name() -> None:
    class Unknown(BaseModel):
        cwd: str

    assert Unknown not in PATH_FIELDS
    with pytest.raises(TypeError, match=r"PATH_FIELDS names no fields of .*Unknown"):
        rebind(moved_workspace(), Unknown(cwd=f"{OLD}/x"))


def test_without_a_move_the_request_is_left_as_it_is() -> None:
    request = CommitRequest(worktree=f"{OLD}/worktrees/t1", task_id="t1", title="T")
    ws = moved_workspace().model_copy(update={"former_dirs": []})
    assert rebind(ws, request) is request


def test_every_declared_field_exists() -> None:
    for model, fields in PATH_FIELDS.items():
        missing = set(fields) - set(model.model_fields)
        assert not missing, f"{model.__name__}: {missing}"


def test_the_landing_a_specialist_does_after_its_turn_moves_with_it() -> None:
    merge = MergeRequest(
        workspace=f"{OLD}/clone",
        execution_branch="coord/exec-1",
        task_branch="b",
        task_id="t1",
        title="T",
    )
    request = SpecialistRequest(
        execution_id="exec-1",
        task_id="t1",
        task_title="T",
        task_prompt="",
        specialist="impl",
        backend="command",
        timeout_s=60,
        cwd=f"{OLD}/worktrees/t1",
        attempt=1,
        then=FollowThrough(gates=[Gate(name="g", run=f"test -d {OLD}")], merge=merge),
    )
    moved = rebind(moved_workspace(), request)
    assert moved.then is not None and moved.then.merge is not None
    assert moved.then.merge.workspace == f"{NEW}/clone"
    assert moved.then.moved and request.then is not None and not request.then.moved
    assert moved.then.gates == [Gate(name="g", run=f"test -d {OLD}")]  # the plan's: as they are
