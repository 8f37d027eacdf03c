"""Heartbeat in the background while an activity awaits something long (a clone, a command,
a model call): the same details every time, or what a callable says at each beat.

The first beat comes after `every` seconds, not at once: a step that ends sooner sends none.
Each beat is a write on the server; beating at the start of every step cost more server time
than the rest of a short task's steps together (benchmarks/RESULTS.md, fourth round). Nothing
is lost: the server notices a dead worker by the heartbeat timeout counted from the start,
and a cancel reaches the step with its first beat either way (the SDK throttles beats)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any

from temporalio import activity


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
        while True:
            await asyncio.sleep(every)
            activity.heartbeat(*details())

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
