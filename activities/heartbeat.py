"""Heartbeat in the background while an activity awaits something long (a clone, a command,
a model call): the same details every time, or what a callable says at each beat.

Beats come every `every` seconds of an activity's steps, counted across its blocks: the
first one `every` seconds after its first block began, not at once, so an activity whose
steps end sooner sends none; and a row of short blocks (one gate after another) still beats
on time, each block beating at once when the last beat is overdue. Each beat is a write on
the server; beating at the start of every step cost more server time than the rest of a
short task's steps together (benchmarks/RESULTS.md, fourth round). The server notices a dead
worker by the heartbeat timeout counted from the start either way."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any

from temporalio import activity

# When each activity attempt (by task token) last beat, or began its first block.
_last_beats: dict[bytes, float] = {}
_REMEMBER_AT_MOST = 4096


def heartbeating(*details: Any, every: float = 5.0) -> AbstractAsyncContextManager[None]:
    """Heartbeat every `every` seconds until the block ends, so a dead worker is noticed fast."""
    return heartbeating_live(lambda: details, every=every)


@asynccontextmanager
async def heartbeating_live(
    details: Callable[[], Sequence[Any]], *, every: float = 5.0
) -> AsyncIterator[None]:
    """Heartbeat `details()` every `every` seconds until the block ends: read at each beat, so
    they say where the work is now (where a retried activity would resume)."""

    async def beat() -> None:
        attempt = activity.info().task_token
        last = _last_beats.setdefault(attempt, time.monotonic())
        if len(_last_beats) > _REMEMBER_AT_MOST:
            del _last_beats[next(iter(_last_beats))]  # the attempt remembered longest
        while True:
            await asyncio.sleep(max(0.0, last + every - time.monotonic()))
            activity.heartbeat(*details())
            last = _last_beats[attempt] = time.monotonic()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
