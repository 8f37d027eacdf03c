"""The count of commands running on the worker (activities/running_commands.py), which tells
the spare check which files it may remember."""

from __future__ import annotations

import asyncio

import pytest

import activities.running_commands as running_commands
from activities.running_commands import counted, oldest_start


@pytest.fixture(autouse=True)
def nothing_running(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(running_commands, "_running", {})


def test_the_oldest_command_running_is_the_one_started_first() -> None:
    assert oldest_start() is None
    with counted():
        first = oldest_start()
        with counted():
            assert oldest_start() == first
        assert oldest_start() == first
    assert oldest_start() is None


async def test_a_command_stays_counted_after_a_cancel_that_may_leave_it_running() -> None:
    async def run(sure: bool) -> None:
        async with counted(sure_on_cancel=sure):
            await asyncio.sleep(60)

    for sure in (True, False):
        task = asyncio.create_task(run(sure))
        await asyncio.sleep(0)
        assert oldest_start() is not None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (oldest_start() is None) is sure


async def test_any_other_end_uncounts_it() -> None:
    with pytest.raises(TimeoutError):
        async with counted(sure_on_cancel=False), asyncio.timeout(0):
            await asyncio.sleep(60)
    assert oldest_start() is None
