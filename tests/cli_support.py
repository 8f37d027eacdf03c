"""Running `coord` as users and scripts do: a subprocess against the session's server."""

from __future__ import annotations

import asyncio
import sys

COORD = [sys.executable, "-m", "cli.main"]


async def coord(*args: str, env: dict[str, str], timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *COORD,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    # No input, good or bad, ends in a traceback.
    assert b"Traceback" not in err, err.decode()
    return proc.returncode or 0, out.decode(), err.decode()
