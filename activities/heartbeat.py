"""Heartbeat in the background while an activity awaits something long (a clone, a command)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from temporalio import activity


@asynccontextmanager
async def heartbeating(*details: Any, every: float = 5.0) -> AsyncIterator[None]:
    """Heartbeat every `every` seconds until the block ends, so a dead worker is noticed fast."""

    async def beat() -> None:
        while True:
            activity.heartbeat(*details)
            await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
