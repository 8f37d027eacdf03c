"""Ticking a finished task in the plan file, inside the commit that lands it.

The merge of a task's commit (activities/worktrees.py) calls `tick_tree` with the tree it is
about to commit: the plan file is read from that tree, ticked (`coordinator.ticks`, pure), and
written back as a new blob into a copy of the tree, through a private index file, so no
working tree is touched and the tick is part of the task's own commit on the execution
branch. Parallel tasks tick their lines one commit after the other, never in conflict.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from activities.git import GIT_IDENTITY, GitError
from coordinator.progress import PlanTickRequest
from coordinator.ticks import tick_plan_text

_TIMEOUT = 120.0


async def _git(
    *args: str, cwd: Path, data: bytes | None = None, env: dict[str, str] | None = None
) -> bytes:
    """git with its output as bytes, unstripped: a file's content must come back exactly."""
    proc = await asyncio.create_subprocess_exec(
        "git",
        "-c",
        "core.hooksPath=/dev/null",
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL if data is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **GIT_IDENTITY, **(env or {})},
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(data), _TIMEOUT)
    except (TimeoutError, asyncio.CancelledError):
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode:
        raise GitError(list(args), cwd, proc.returncode or -1, err.decode(errors="replace"))
    return out


@dataclass(frozen=True)
class Ticked:
    tree: str  # the tree with the task ticked, or the tree as it was
    ticked: bool
    note: str  # "ticked in PATH", or why nothing was


async def tick_tree(cwd: Path, tree: str, request: PlanTickRequest) -> Ticked:
    """The tree with the task ticked in its plan file, or as it was and why."""
    entry = (await _git("ls-tree", "-z", tree, "--", request.path, cwd=cwd)).decode()
    if not entry.strip("\0"):
        return Ticked(tree, False, f"not ticked: {request.path} is not in the branch")
    meta, _, _ = entry.partition("\t")
    mode, kind, blob = meta.split()
    if kind != "blob":
        return Ticked(tree, False, f"not ticked: {request.path} is not a file in the branch")
    try:
        text = (await _git("cat-file", "blob", blob, cwd=cwd)).decode("utf-8")
    except UnicodeDecodeError:
        return Ticked(tree, False, f"not ticked: {request.path} is not UTF-8 text")
    bom = text.startswith("\ufeff")
    outcome = tick_plan_text(text.removeprefix("\ufeff"), request)
    if not outcome.changed:
        return Ticked(tree, False, f"not ticked in {request.path}: {outcome.note}")
    content = ("\ufeff" if bom else "") + outcome.text
    new_blob = (await _git("hash-object", "-w", "--stdin", cwd=cwd, data=content.encode())).decode()
    with tempfile.TemporaryDirectory(prefix="coord-tick-") as scratch:
        index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        await _git("read-tree", tree, cwd=cwd, env=index)
        cacheinfo = f"{mode},{new_blob.strip()},{request.path}"
        await _git("update-index", "--add", "--cacheinfo", cacheinfo, cwd=cwd, env=index)
        new_tree = (await _git("write-tree", cwd=cwd, env=index)).decode().strip()
    return Ticked(new_tree, True, f"ticked in {request.path}")


__all__ = ["Ticked", "tick_tree"]
