"""The status file: a JSON copy of the progress in the workspace, for tools that watch it.

Plans with `status_file` get one. `StatusFile` owns everything about it: where it goes, a
version bumped when something it shows changed, the version last written, and the
background writer that writes one at a time (changes made while a write runs are coalesced
into the next one). The execution tells it `changed()` whenever it publishes, and `close()`s
it before a continue-as-new and at the end, when the file must show that moment exactly.
Workflow code: deterministic, no I/O.
"""

from __future__ import annotations

import asyncio
from pathlib import PurePosixPath

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from coordinator.environment import status_file_path
    from coordinator.execution import StatusFileRequest
    from coordinator.report import Progress
    from workflows import steps
    from workflows.phase import root_message

StatusSeen = tuple[object, ...]


class StatusFile:
    def __init__(self, progress: Progress, setting: bool | str, execution_id: str) -> None:
        self._progress = progress
        # Relative to the workspace, or absolute; None: the plan wants no status file.
        self._path = status_file_path(setting, execution_id)
        self._seen: StatusSeen | None = None
        self._version = 0
        self._written = 0
        self._closing = False
        self._failed = False
        self._writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start writing (again, after `close()`), if the plan wants a status file."""
        if self._path:
            self._closing = False
            self._writer = asyncio.create_task(self._keep_written())

    def changed(self) -> None:
        """Phases, task transitions, escalations and approvals go to the file; gate verdicts
        and timestamps alone do not (they ride along with the next write)."""
        if self._path is None:
            return
        p = self._progress
        seen = (
            p.status,
            p.phase,
            tuple((ph.status, ph.summary) for ph in p.phases),
            tuple((t.status, t.attempts) for t in p.tasks),
            tuple(e.state for e in p.escalations),
            tuple(a.state for a in p.approvals),
            p.workspace.head_commit if p.workspace else None,
            len(p.problems),
            p.review,
        )
        if seen != self._seen:
            self._seen = seen
            self._version += 1

    async def close(self) -> None:
        """One last write of the progress as it stands, exactly; then the writer stops."""
        if self._writer is None:
            return
        self._version += 1
        self._closing = True
        await self._writer

    async def _keep_written(self) -> None:
        while True:
            await workflow.wait_condition(
                lambda: (
                    self._closing
                    or (self._progress.workspace is not None and self._version != self._written)
                )
            )
            ws = self._progress.workspace
            if ws is None or self._version == self._written:
                return  # closing, and all is written (or there is nowhere to write: no clone)
            version = self._version
            assert self._path is not None
            await self._write(str(PurePosixPath(ws.path) / self._path), ws.path)
            self._written = version

    async def _write(self, path: str, root: str) -> None:
        """One write (an absolute path stays absolute). A failure is reported once, never
        raised: the file is for tools watching; the execution goes on without it."""
        try:
            await steps.write_status(
                StatusFileRequest(
                    path=path, root=root, progress=self._progress.model_copy(deep=True)
                )
            )
        except ActivityError as err:
            if not self._failed:
                self._failed = True
                self._progress.problems.append(
                    f"status file {path} could not be written: {root_message(err)}"
                )
