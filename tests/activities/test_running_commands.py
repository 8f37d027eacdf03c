"""The count of commands running on the worker (activities/running_commands.py), which tells
the spare check which files it may remember."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import activities.running_commands as running_commands
from activities.running_commands import counted, oldest_start, process_alive


@pytest.fixture(autouse=True)
def nothing_running(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(running_commands, "_running", {})
    monkeypatch.setattr(running_commands, "_lingering", {})


def test_the_oldest_command_running_is_the_one_started_first() -> None:
    assert oldest_start() is None
    with counted():
        first = oldest_start()
        with counted():
            assert oldest_start() == first
        assert oldest_start() == first
    assert oldest_start() is None


async def test_a_command_stays_counted_after_a_cancel_while_it_may_still_run() -> None:
    lives = [True]

    async def run(alive: Callable[[], bool] | None) -> None:
        async with counted(alive_after_cancel=alive):
            await asyncio.sleep(60)

    for alive in (None, lambda: lives[0]):
        task = asyncio.create_task(run(alive))
        await asyncio.sleep(0)
        assert oldest_start() is not None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (oldest_start() is None) is (alive is None)
    lives[0] = False  # the process it started has ended
    assert oldest_start() is None


def test_a_process_is_alive_while_it_runs(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    assert not process_alive(pid_file)  # never started
    with subprocess.Popen(["sleep", "60"]) as proc:
        pid_file.write_text(f"{proc.pid}\n")
        assert process_alive(pid_file)
        proc.kill()
        proc.wait()
    assert not process_alive(pid_file)


async def test_any_other_end_uncounts_it() -> None:
    with pytest.raises(TimeoutError):
        async with counted(alive_after_cancel=lambda: True), asyncio.timeout(0):
            await asyncio.sleep(60)
    assert oldest_start() is None
