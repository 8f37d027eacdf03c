"""The worker learns of its processes' ends through pidfds (activities/child_watcher.py): no
thread per process, exit codes as before."""

from __future__ import annotations

import asyncio
import sys
import threading
import warnings
from collections.abc import Iterator

import pytest

from activities.child_watcher import watch_children_with_pidfds


@pytest.fixture
def restore_watcher() -> Iterator[None]:
    yield
    if sys.version_info < (3, 12):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_child_watcher(asyncio.ThreadedChildWatcher())


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.12+ picks pidfds itself")
@pytest.mark.usefixtures("restore_watcher")
async def test_processes_end_without_a_thread_each() -> None:
    assert watch_children_with_pidfds(asyncio.get_running_loop())
    threads = threading.active_count()
    procs = [
        await asyncio.create_subprocess_exec("sh", "-c", f"sleep 0.2; exit {code}")
        for code in range(5)
    ]
    assert threading.active_count() == threads  # the threaded watcher adds one per process
    assert [await p.wait() for p in procs] == [0, 1, 2, 3, 4]
    proc = await asyncio.create_subprocess_exec(
        "sh",
        "-c",
        "echo out; echo err >&2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert await proc.communicate() == (b"out\n", b"err\n") and proc.returncode == 0
