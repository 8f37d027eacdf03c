"""Heartbeat in the background while an activity awaits something long (a clone, a command,
a model call): the same details every time, or what a callable says at each beat."""

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
            activity.heartbeat(*details())
            await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
