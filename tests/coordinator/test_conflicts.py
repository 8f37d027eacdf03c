"""Conflict markers, conflict descriptions and the history of failed attempts (pure)."""

from __future__ import annotations

from cli.render import escalation_lines
from coordinator.attempts import FAILURE_CHARS, AttemptFailure, feedback_for
from coordinator.conflicts import (
    CONFLICT_CHARS,
    ConflictFacts,
    clip,
    describe,
    left_markers,
    marked_regions,
    marker_lines,
    markers_left,
)
from coordinator.escalation import Escalation
from coordinator.status_comment import escalation_markdown

CONFLICTED = "\n".join(
    [
        "one",
        "<<<<<<< coord/e1",
        "TWO from t1",
        "=======",
        "two from t2",
        ">>>>>>> coord-task/e1/t2",
        "three",
        "",
    ]
)


def test_marker_lines_are_git_markers_at_line_start_only() -> None:
    assert marker_lines(CONFLICTED) == [2, 4, 6]
    diff3 = "<<<<<<< ours\r\na\r\n||||||| base\r\nb\r\n=======\r\nc\r\n>>>>>>> theirs\r\n"
    assert marker_lines(diff3) == [1, 3, 5, 7]
    not_markers = " <<<<<<< indented\n<<<<<<<< eight\n======= x\n========\n'>>>>>>> quoted'\n"
    assert marker_lines(not_markers) == []
    assert marker_lines("<<<<<<<\n=======\n>>>>>>>") == [1, 2, 3]  # markers without labels


def test_markers_count_only_beyond_what_the_file_had_before() -> None:
    assert left_markers(CONFLICTED, allowed=0) == [2, 4, 6]
    assert left_markers("Title\n=======\ntext\n", allowed=1) == []
    assert left_markers("Title\n=======\ntext\n", allowed=0) == [2]
    assert left_markers("one\ntwo\n", allowed=0) == []


def test_marked_regions_quote_both_sides_within_a_bound() -> None:
    assert marked_regions(CONFLICTED) == "\n".join(CONFLICTED.splitlines()[1:6])
    assert marked_regions("no conflict here\n") == ""
    huge = "<<<<<<< a\n" + "x\n" * 5000 + "=======\n" + "y\n" * 5000 + ">>>>>>> b\n"
    quoted = marked_regions(huge, limit=600)
    assert len(quoted) <= 600
    assert quoted.startswith("<<<<<<< a") and quoted.endswith(">>>>>>> b")
    assert "characters cut" in quoted


def test_clip_keeps_the_start_and_the_end() -> None:
    assert clip("short", 10) == "short"
    text = "BEGIN " + "m" * 1000 + " END"
    clipped = clip(text, 100)
    assert len(clipped) <= 100 and clipped.startswith("BEGIN") and clipped.endswith("END")
    assert len(clip(text, 5)) == 5


def test_the_description_names_the_others_the_files_and_quotes_both_sides() -> None:
    facts = ConflictFacts(
        task_id="t2",
        execution_branch="coord/e1",
        execution_head="a" * 40,
        task_branch="coord-task/e1/t2",
        files=["shared.txt", "big.txt"],
        others=["task t1", "task t3"],
        messages=["CONFLICT (content): Merge conflict in shared.txt"],
        sides={"shared.txt": marked_regions(CONFLICTED), "big.txt": "z" * 50_000},
    )
    text = describe(facts)
    first = text.splitlines()[0]
    assert "task t2 conflicts with task t1 and task t3 in shared.txt and big.txt" in first
    assert "TWO from t1" in text and "two from t2" in text
    assert len(text) <= CONFLICT_CHARS
    assert "`>>>>>>> coord-task/e1/t2` is this task's change" in text


def test_markers_left_says_where_and_with_whom() -> None:
    message = markers_left({"shared.txt": [2, 4, 6]}, ["task t1"])
    assert "task t1" in message and "shared.txt (lines 2, 4, 6)" in message
    assert "refused" in message


def test_feedback_keeps_every_failure_oldest_first_within_the_limit() -> None:
    failures = [
        AttemptFailure.of(1, "merge conflict: task t2 conflicts with task t1", "S" * 10_000),
        AttemptFailure.of(2, "gate lint failed:\nE501", "L" * 10_000),
        AttemptFailure.of(3, "conflict markers are still in shared.txt"),
    ]
    assert len(failures[0].detail) <= FAILURE_CHARS and "\n" not in failures[1].error
    text = feedback_for(failures, "the branch moved: " + "n" * 9000, limit=8000)
    assert len(text) <= 8000
    at = [text.index(f"Attempt {n} failed") for n in (1, 2, 3)]
    assert at == sorted(at) and "task t1" in text and "the branch moved" in text
    assert feedback_for([], "", limit=100) == ""
    assert feedback_for([], "only a note", limit=100) == "only a note"


def test_the_human_sees_every_failed_attempt() -> None:
    escalation = Escalation(
        id="t2:1",
        phase="implementation",
        task_id="t2",
        reason="3 attempts failed",
        question="retry?",
        last_error="conflict markers are still in shared.txt",
        attempts=3,
        failures=[
            AttemptFailure.of(1, "merge conflict: task t2 conflicts with task t1 in shared.txt"),
            AttemptFailure.of(2, "gate lint failed", "\n".join(f"line {n}" for n in range(30))),
            AttemptFailure.of(3, "conflict markers are still in shared.txt"),
        ],
    )
    lines = escalation_lines("e1", escalation)
    shown = "\n".join(lines)
    assert "attempt 1: merge conflict: task t2 conflicts with task t1 in shared.txt" in shown
    assert "attempt 3: conflict markers are still in shared.txt" in shown
    assert "| line 0" in shown and "| line 8" not in shown and "22 more lines" in shown
    markdown = "\n".join(escalation_markdown("e1", escalation))
    assert "- attempt 1: merge conflict: task t2 conflicts with task t1" in markdown
