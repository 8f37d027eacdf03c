"""When the plan commands and agents running on this worker now started.

A check that remembers files by their change time (activities/spare_check.py) must not trust
a time a still-running process could have set: a process that holds a file mapped for writing
changes its bytes without a new ctime once the first write to a page has set one, and that
first write came after the process started. So files whose ctime is older than the start of
every command still running cannot be under such a write; `oldest_start` says that time.
Every plan command (activities/process.py) and Claude Code run (activities/claude_code/)
is counted while it runs, from just before its process starts.
"""

from __future__ import annotations

import itertools
import threading
import time
from asyncio import CancelledError

_running: dict[int, int] = {}  # a token per command -> its start, in ns since the epoch
_tokens = itertools.count()
_lock = threading.Lock()  # read from the checks' threads


class counted:  # used as a context manager, named like one
    """Count a command as running for the block, `with` or `async with` (enter it before
    the process starts). `sure_on_cancel=False`: a cancellation may leave the process
    running (the Claude Agent SDK skips killing its CLI when cancelled while closing), so
    the block ending that way leaves the command counted, as running for good: the checks
    then remember fewer files, never one that process could still write."""

    def __init__(self, *, sure_on_cancel: bool = True) -> None:
        self.sure_on_cancel = sure_on_cancel

    def __enter__(self) -> None:
        self.token = next(_tokens)
        with _lock:
            _running[self.token] = time.time_ns()

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None and not self.sure_on_cancel and issubclass(kind, CancelledError):
            return
        with _lock:
            del _running[self.token]

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.__exit__(kind)


def oldest_start() -> int | None:
    """When the longest-running command now running started (ns since the epoch); None when
    none runs."""
    with _lock:
        return min(_running.values(), default=None)
