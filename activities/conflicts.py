"""Merge conflicts of a task: what the fixer is told, and the record that keeps a task from
committing conflict markers.

Git forgets a conflict once the replay (activities/worktrees.py) has put the task's changes
onto the execution head: the index is reset and the markers are plain text in the files. So
the coordinator keeps its own record of the conflicted files, in the worktree's git folder
(private to the worktree, gone with it), written before the replay moves the branch: it holds
across worker restarts and activity retries. The task's commit checks those files first and
is refused while any of them still has conflict markers.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError
from temporalio.exceptions import ApplicationError

from activities.git import run_git
from coordinator.branches import TASK_TRAILER
from coordinator.conflicts import (
    SIDES_FILES,
    ConflictFacts,
    added_marker_lines,
    left_markers,
    marked_regions,
    marker_lines,
)

CONFLICT_RECORD = "coord-conflicts.json"
OTHERS_LOOKED_AT = 50  # commits whose authors (tasks) the description names, at most


@dataclass
class Merged:
    """What `git merge-tree --write-tree` made: a tree (with conflict markers in the files
    that clash), those files and git's CONFLICT messages."""

    tree: str
    conflict_files: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


async def conflict_facts(
    cwd: Path,
    merged: Merged,
    task_id: str,
    execution_branch: str,
    task_branch: str,
    base: str,
    execution_head: str,
) -> ConflictFacts:
    """Who changed the conflicting files on the execution branch since the task's `base`,
    and both sides of each clash as the merge's tree holds them."""
    files = merged.conflict_files
    sides = {}
    for file in files[:SIDES_FILES]:
        sides[file] = marked_regions((await _blob(cwd, f"{merged.tree}:{file}")) or "")
    return ConflictFacts(
        task_id=task_id,
        execution_branch=execution_branch,
        execution_head=execution_head,
        task_branch=task_branch,
        files=files,
        others=await _others(cwd, base, execution_head, files),
        messages=merged.conflicts,
        sides=sides,
    )


async def _others(cwd: Path, base: str, head: str, files: list[str]) -> list[str]:
    """The tasks (or plain commits) between `base` and `head` that touched `files`."""
    if not files:
        return []
    trailer = f"%(trailers:key={TASK_TRAILER},valueonly,separator=%x2C)"
    result = await run_git(
        *("--literal-pathspecs", "log", "--reverse", f"--max-count={OTHERS_LOOKED_AT}"),
        f"--format=%H%x09{trailer}%x09%s",
        f"{base}..{head}",
        "--",
        *files,
        cwd=cwd,
    )
    found: list[str] = []
    for line in result.stdout.splitlines() if result.returncode == 0 else []:
        commit, tasks, subject = [*line.split("\t", 2), "", ""][:3]
        names = [f"task {t.strip()}" for t in tasks.split(",") if t.strip()]
        for name in names or [f"commit {commit[:12]} ({subject[:80]})"]:
            if name not in found:
                found.append(name)
    return found


async def _blob(cwd: Path, spec: str) -> str | None:
    """A file's text in the object store; None when it is not there (deleted on that side)."""
    result = await run_git("cat-file", "blob", spec, cwd=cwd)
    return result.stdout if result.returncode == 0 else None


class _Record(BaseModel):
    files: dict[str, int] = Field(default_factory=dict)  # path -> marker-like lines before
    others: list[str] = Field(default_factory=list)


async def record_conflict(
    wt: Path, admin: Path, facts: ConflictFacts, ours: str, theirs: str
) -> None:
    """Remember (in `admin`, the worktree's git folder) the conflicted files of a replay and
    the others it clashed with, with how many marker-like lines each file had on either side
    before (those are no conflict's)."""
    record = _read_record(admin)
    for file in facts.files:
        before = [await _blob(wt, f"{side}:{file}") for side in (ours, theirs)]
        record.files[file] = max(len(marker_lines(text or "")) for text in before)
    record.others = list(dict.fromkeys([*record.others, *facts.others]))
    path = admin / CONFLICT_RECORD
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(record.model_dump_json())
    partial.replace(path)  # never a torn record


def forget_conflicts(admin: Path) -> None:
    """The worktree starts over (a fresh attempt): no conflict of its own any more."""
    (admin / CONFLICT_RECORD).unlink(missing_ok=True)


async def markers_left(
    wt: Path, admin: Path, *, everything: bool = False
) -> tuple[dict[str, list[int]], list[str]]:
    """(file -> its conflict-marker lines, the others the conflict was with) for recorded
    conflicted files that still hold markers; ({}, []) when all are resolved (`everything`:
    the others whatever the files hold)."""
    record = _read_record(admin)
    left = {}
    for file, allowed in sorted(record.files.items()):
        text = await asyncio.to_thread(_text, wt, file)
        lines = left_markers(text, allowed) if text is not None else []
        if lines:
            left[file] = lines
    return left, record.others if left or everything else []


async def markers_added(wt: Path, admin: Path, base: str) -> dict[str, list[int]]:
    """After a conflict, the files whose staged change against `base` adds lines git writes
    around a clash (`<<<<<<< `, `>>>>>>> `): a conflicted file moved or copied elsewhere
    keeps its markers under a name the record does not know. {} when there was no conflict.
    Runs after `git add -A` (the index is what would be committed)."""
    if not _read_record(admin).files:
        return {}
    result = await run_git(
        *("-c", "core.quotePath=false", "diff", "--cached", "--no-color", "--no-ext-diff"),
        *("--no-renames", "-U0", base, "--"),
        cwd=wt,
    )
    return added_marker_lines(result.stdout) if result.returncode == 0 else {}


def _text(wt: Path, file: str) -> str | None:
    """A worktree file's text; None when it is gone or not a regular file in the worktree
    (git commits a symlink as its target's name: nothing is read through one)."""
    path = wt / file
    inside = path.resolve().is_relative_to(wt.resolve())
    if not inside or path.is_symlink() or not path.is_file():
        return None
    return path.read_bytes().decode(errors="replace")


def _read_record(admin: Path) -> _Record:
    path = admin / CONFLICT_RECORD
    try:
        return _Record.model_validate_json(path.read_text())
    except FileNotFoundError:
        return _Record()
    except ValidationError as err:
        raise ApplicationError(
            f"the record of conflicted files {path} is unreadable ({err}); remove it once "
            "those files are checked for conflict markers",
            type="BadConflictRecord",
            non_retryable=True,
        ) from err
