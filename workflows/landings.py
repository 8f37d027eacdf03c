"""Tasks landing on the execution branch side by side, and which head is the latest.

A task lands in one activity (commit, merge, push, removal: activities/worktree_land.py).
The merges themselves take turns under the clone's lock on the worker, so the workflow does
not make landings wait for each other: only for gates on the branch (they hold the phase's
`branch_lock`, and wait here until the landings in flight are done) and for a fix's merge.

Landings report in any order, so the last report is not always the latest head. Each merge
says which head its commit was put on (`previous`; also a retry that finds the commit
merged by its earlier try); the heads chain from the one the workflow knows. Should a
landing fail after its merge (its push, three times), the chain has a gap: once no landing
is in flight, the head no other landing moved from is taken for the latest (with two such
failures at once it may be an earlier one, until the phase reads the branch at its end).
Workflow code: deterministic, no I/O."""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from coordinator.branches import MergeResult
    from coordinator.execution_state import Workspace


class Landings:
    def __init__(self) -> None:
        self.in_flight = 0
        self._moves: dict[str, str] = {}  # previous head -> the head a merge moved it to

    async def begin(self, branch_lock: asyncio.Lock) -> None:
        """Wait while gates hold the branch; then this landing is in flight."""
        if branch_lock.locked():
            await workflow.wait_condition(lambda: not branch_lock.locked())
        self.in_flight += 1

    def end(self, ws: Workspace, merged: MergeResult | None) -> None:
        """The landing is over (`merged` None: it failed); the workspace's head follows."""
        self.in_flight -= 1
        if merged is not None and merged.merged and merged.previous and merged.commit:
            self._moves[merged.previous] = merged.commit
        while ws.head_commit in self._moves:
            ws.head_commit = self._moves.pop(ws.head_commit)
        if self.in_flight == 0 and self._moves:
            tips = sorted(set(self._moves.values()) - set(self._moves))
            ws.head_commit = tips[0] if tips else ws.head_commit
            self._moves.clear()

    async def drained(self) -> None:
        """Until no landing is in flight (nothing to wait for: no await, no new command)."""
        if self.in_flight:
            await workflow.wait_condition(lambda: self.in_flight == 0)
