"""Running `coord` as users and scripts do: a subprocess against the session's server."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

COORD = [sys.executable, "-m", "cli.main"]


def client_env(address: str, namespace: str, task_queue: str, root: Path) -> dict[str, str]:
    """The environment of a `coord` or worker subprocess pointed at a test server."""
    # The developer's own Temporal and coord settings (API key, TLS, profile) must not leak in.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "COORD_"))}
    return {
        **inherited,
        "TEMPORAL_ADDRESS": address,
        "TEMPORAL_NAMESPACE": namespace,
        "COORD_TASK_QUEUE": task_queue,
        "COORD_WORKSPACE_ROOT": str(root / "workspaces"),
        "COORD_ARTIFACTS_ROOT": str(root / "artifacts"),
    }


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
