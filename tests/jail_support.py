"""Seeing a command's processes from outside its jail, and choosing whether there is one.

Inside the jail a command has a PID namespace of its own: the pid it reads for itself (`$$`,
`$!`) means nothing outside. So tests recognise its processes by a token on their command
line instead (`sleep 1000.<digits>`), found in the worker's /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from pathlib import Path

import pytest

from activities.jail import worker_jail
from coordinator.environment import CONFINE_VARIABLE

MODES = ("jail", "off")  # a parametrized test's confinement: bubblewrap, and the fallback


def use_mode(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run this test's commands in the jail (which must be there) or in the fallback."""
    monkeypatch.setenv(CONFINE_VARIABLE, "auto" if mode == "jail" else "off")
    if mode == "jail":
        require_bwrap()


def require_bwrap() -> None:
    jail = worker_jail()
    assert jail.available, (
        f"these tests need bubblewrap: {jail.note} (`make install` installs it as root)"
    )


def sleeper() -> str:
    """A `sleep` long enough for any test, with a duration no other process has."""
    return f"sleep 1000.{random.randrange(10**8):08d}"


def running(token: str) -> list[int]:
    """The processes (not zombies) whose command line contains `token`."""
    found = []
    needle = token.encode()
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if needle not in (entry / "cmdline").read_bytes().replace(b"\0", b" "):
                continue
            stat = (entry / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return found


async def until_running(token: str, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while not (found := running(token)):
        assert time.monotonic() < deadline, f"no process with {token!r} after {timeout} s"
        await asyncio.sleep(0.05)
    return found


async def until_gone(token: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while found := running(token):
        assert time.monotonic() < deadline, f"{found} with {token!r} still run after {timeout} s"
        await asyncio.sleep(0.05)


def require_own_network() -> None:
    """The jail has a network of its own (bubblewrap and slirp4netns)."""
    require_bwrap()
    jail = worker_jail()
    assert jail.isolates_network, (
        f"these tests need slirp4netns: {jail.network_note} (`make install` installs it as root)"
    )


async def children_left(name: str, within: float = 20.0) -> list[int]:
    """This process's children named `name` still living after `within` seconds; [] as soon
    as there are none (slirp4netns is reaped in the background once its jail is gone)."""
    deadline = time.monotonic() + within
    while (found := children_named(name)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return found


def children_named(name: str) -> list[int]:
    """This process's living children whose program is `name`."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            comm = stat.split("(", 1)[1].rsplit(")", 1)[0]
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if comm == name and int(ppid) == os.getpid() and state not in ("Z", "X"):
                found.append(int(entry.name))
    return found
