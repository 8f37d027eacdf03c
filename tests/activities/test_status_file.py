"""The status file is written inside the clone without following links a specialist planted
there (activities/environment.py `write_status_file`, called directly: real files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.environment import write_status_file
from coordinator.execution import StatusFileRequest
from coordinator.report import PHASES, PhaseState, Progress


def progress() -> Progress:
    return Progress(
        execution_id="e1",
        plan_name="p",
        phases=[PhaseState(name=name) for name in PHASES],
        tasks=[],
    )


def request(root: Path, relative: str) -> StatusFileRequest:
    return StatusFileRequest(path=str(root / relative), root=str(root), progress=progress())


async def test_the_file_is_written_and_replaced_inside_the_clone(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    clone.mkdir()
    await write_status_file(request(clone, ".coord/execution/e1.json"))
    await write_status_file(request(clone, ".coord/execution/e1.json"))
    written = clone / ".coord" / "execution" / "e1.json"
    assert json.loads(written.read_text())["execution_id"] == "e1"
    assert sorted(p.name for p in written.parent.iterdir()) == ["e1.json"]  # no leftovers


@pytest.mark.parametrize("planted", [".coord", ".coord/execution"])
async def test_a_link_planted_in_the_clone_is_not_followed(tmp_path: Path, planted: str) -> None:
    clone, elsewhere = tmp_path / "clone", tmp_path / "elsewhere"
    (clone / ".coord").mkdir(parents=True)
    (elsewhere / "execution").mkdir(parents=True)
    target = elsewhere / "execution" if planted.endswith("execution") else elsewhere
    if (clone / planted).is_dir():
        (clone / planted).rmdir()
    (clone / planted).symlink_to(target)

    with pytest.raises(ApplicationError, match="not a plain folder") as err:
        await write_status_file(request(clone, ".coord/execution/e1.json"))
    assert err.value.non_retryable
    assert list(elsewhere.rglob("*.json")) == []


async def test_a_link_in_place_of_the_file_is_replaced_not_written_through(
    tmp_path: Path,
) -> None:
    clone, outside = tmp_path / "clone", tmp_path / "outside.json"
    (clone / ".coord" / "execution").mkdir(parents=True)
    outside.write_text("keep\n")
    (clone / ".coord" / "execution" / "e1.json").symlink_to(outside)
    await write_status_file(request(clone, ".coord/execution/e1.json"))
    assert outside.read_text() == "keep\n"
    assert not (clone / ".coord" / "execution" / "e1.json").is_symlink()
