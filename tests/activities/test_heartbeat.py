"""Heartbeats (activities/heartbeat.py): none for an activity that ends within the interval,
and on time through a row of short steps, each too short to beat by itself."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from typing import Any

from temporalio import activity
from temporalio.testing import ActivityEnvironment

from activities.heartbeat import heartbeating


def environment(beats: list[tuple[Any, ...]]) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, task_token=os.urandom(8))  # an attempt of its own
    env.on_heartbeat = lambda *details: beats.append(details)
    return env


@activity.defn
async def steps(count: int, seconds: float, every: float) -> None:
    for number in range(count):
        async with heartbeating(f"step {number}", every=every):
            await asyncio.sleep(seconds)


async def test_a_short_activity_sends_no_beat() -> None:
    beats: list[tuple[Any, ...]] = []
    await environment(beats).run(steps, 3, 0.01, 30.0)
    assert beats == []


async def test_a_row_of_short_steps_beats_on_time() -> None:
    """Eight steps of 0.15 s, beats due every 0.2 s: each step is too short to beat on its
    own, but the activity as a whole does (at least every 0.2 s of its 1.2 s or more)."""
    beats: list[tuple[Any, ...]] = []
    await environment(beats).run(steps, 8, 0.15, 0.2)
    assert len(beats) >= 4, beats
    assert all(len(b) == 1 and str(b[0]).startswith("step ") for b in beats)
