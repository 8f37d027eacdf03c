"""How the worker's event loop learns that a process it started has ended.

Python 3.11's default (`ThreadedChildWatcher`) starts a thread for every process, blocked in
`waitpid`, which then hands the exit to the loop: for every git, bwrap and slirp4netns a task
runs, a thread made and ended, and the exit noticed only once that thread gets the GIL back
from a busy loop. On Linux 5.3 and later a pidfd becomes readable when its process ends, so
the loop watches it like a socket (`PidfdChildWatcher`), with no thread. Python 3.12 and
later choose that by themselves where it works.
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings


def watch_children_with_pidfds(loop: asyncio.AbstractEventLoop) -> bool:
    """Use pidfds for the processes started from `loop` (the main thread's), where Python
    does not already and the kernel allows it; True when pidfds are in use."""
    if sys.version_info >= (3, 12) or not sys.platform.startswith("linux"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))  # refused by old kernels and some seccomp rules
    except (AttributeError, OSError):
        return False
    watcher = asyncio.PidfdChildWatcher()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_child_watcher(watcher)
    watcher.attach_loop(loop)
    return True
