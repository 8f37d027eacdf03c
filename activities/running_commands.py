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
from collections.abc import Callable
from pathlib import Path

from activities.process_groups import process_running

_running: dict[int, int] = {}  # a token per command -> its start, in ns since the epoch
_tokens = itertools.count()
# Commands whose block was cancelled while they may still run: how to tell they ended.
_lingering: dict[int, Callable[[], bool]] = {}
_lock = threading.Lock()  # read from the checks' threads


class counted:  # used as a context manager, named like one
    """Count a command as running for the block, `with` or `async with` (enter it before
    the process starts). `alive_after_cancel`: a cancellation may leave the process running
    (the Claude Agent SDK skips killing its CLI when cancelled while closing), so the block
    ending that way leaves the command counted for as long as this says it lives."""

    def __init__(self, *, alive_after_cancel: Callable[[], bool] | None = None) -> None:
        self.alive_after_cancel = alive_after_cancel

    def __enter__(self) -> None:
        self.token = next(_tokens)
        with _lock:
            _running[self.token] = time.time_ns()

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        cancelled = kind is not None and issubclass(kind, CancelledError)
        with _lock:
            if cancelled and self.alive_after_cancel is not None:
                _lingering[self.token] = self.alive_after_cancel
                return
            del _running[self.token]

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.__exit__(kind)


def process_alive(pid_file: Path) -> bool:
    """Whether the process whose pid `pid_file` holds still runs (not gone, not a zombie);
    False without the file."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    return process_running(pid)


def oldest_start() -> int | None:
    """When the longest-running command now running started (ns since the epoch); None when
    none runs."""
    with _lock:
        for token, alive in list(_lingering.items()):
            if not alive():
                del _lingering[token], _running[token]
        return min(_running.values(), default=None)
