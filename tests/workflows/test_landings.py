"""Which head is the latest when tasks land side by side and report in any order
(workflows/landings.py)."""

from __future__ import annotations

from coordinator.branches import MergeResult
from coordinator.execution_state import Workspace
from workflows.landings import Landings


def workspace() -> Workspace:
    return Workspace(
        path="/w", branch="coord/e", base_branch="main", base_commit="a", head_commit="a"
    )


def moved(previous: str, head: str) -> MergeResult:
    return MergeResult(merged=True, head=head, commit=head, previous=previous)


def landings(count: int) -> Landings:
    lands = Landings()
    lands.in_flight = count  # as `begin` leaves it for `count` landings
    return lands


def test_heads_reported_out_of_order_end_at_the_latest() -> None:
    ws, lands = workspace(), landings(3)
    lands.end(ws, moved("c", "d"))  # the third merge reports first
    assert ws.head_commit == "a"  # not yet: b and c are unknown
    lands.end(ws, moved("a", "b"))
    assert ws.head_commit == "b"
    lands.end(ws, moved("b", "c"))
    assert ws.head_commit == "d" and lands.in_flight == 0


def test_a_merge_that_did_not_move_the_branch_changes_nothing() -> None:
    ws, lands = workspace(), landings(2)
    lands.end(ws, MergeResult(merged=True, head="a", already_merged=True, commit="x"))
    lands.end(ws, MergeResult(merged=False, head="a", conflict="shared.txt"))
    assert ws.head_commit == "a"


def test_a_landing_that_failed_after_its_merge_leaves_a_gap_closed_at_the_end() -> None:
    ws, lands = workspace(), landings(3)
    lands.end(ws, moved("c", "d"))
    lands.end(ws, None)  # merged a -> b, then its push failed for good: b is never reported
    assert ws.head_commit == "a"
    lands.end(ws, moved("b", "c"))
    assert ws.head_commit == "d"  # none in flight: the head no landing moved from
