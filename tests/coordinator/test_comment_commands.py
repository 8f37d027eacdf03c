"""What a `/coord ...` comment means for an execution's questions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from coordinator.comment_commands import CommandComment, interpret, is_command
from coordinator.escalation import Action, Approval, ApprovalAnswer, Escalation, Resolution
from coordinator.report import Progress

REPO = "acme/app"


def progress(*escalations: Escalation, approvals: list[Approval] | None = None) -> Progress:
    return Progress(
        execution_id="x",
        plan_name="p",
        phases=[],
        tasks=[],
        escalations=list(escalations),
        approvals=approvals or [],
    )


def escalation(eid: str, **extra: object) -> Escalation:
    return Escalation.model_validate(
        {"id": eid, "phase": "implementation", "reason": "r", "question": "q", **extra}
    )


def said(body: str, permission: str = "write") -> CommandComment:
    return CommandComment(id=7, login="mo", body=body, permission=permission)


@pytest.mark.parametrize(
    ("body", "command"),
    [("/coord skip", True), ("  /COORD  approve", True), ("/coordinate", False), ("hi", False)],
)
def test_what_is_a_command(body: str, command: bool) -> None:
    assert is_command(body) is command


def test_the_only_pending_escalation_is_answered_with_the_login() -> None:
    meant = interpret(said("/coord skip"), REPO, progress(escalation("implementation:a:1")))
    assert meant.resolution == Resolution(
        escalation_id="implementation:a:1", action=Action.SKIP, by="mo"
    )
    assert meant.reply == "@mo: taken: escalation `implementation:a:1`: skip."


def test_retry_takes_the_named_escalation_and_guidance_after_a_colon() -> None:
    p = progress(escalation("implementation:a:1"), escalation("integration:github:1"))
    meant = interpret(said("/coord retry integration:github:1: push again\nthanks"), REPO, p)
    assert meant.resolution is not None
    assert (meant.resolution.escalation_id, meant.resolution.guidance) == (
        "integration:github:1",
        "push again\nthanks",
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("/coord retry", "a retry needs guidance"),
        ("/coord skip because", "takes no text after the escalation id"),
        ("/coord", "is not a command I understand"),
        ("/coord merge it", "`/coord merge it` is not a command I understand"),
        ("/coord reject", "no approval is waiting"),
    ],
)
def test_garbled_commands_get_a_reply_saying_what_is_understood(body: str, expected: str) -> None:
    meant = interpret(said(body), REPO, progress(escalation("e1")))
    assert meant.resolution is None and meant.approval is None
    assert expected in meant.reply


def test_without_write_access_nothing_is_taken() -> None:
    meant = interpret(said("/coord abort", "read"), REPO, progress(escalation("e1")))
    assert meant.resolution is None
    assert "Only people with write access to `acme/app`" in meant.reply
    assert "your permission: read" in meant.reply


def test_several_pending_the_reply_names_them() -> None:
    meant = interpret(said("/coord abort"), REPO, progress(escalation("e1"), escalation("e2")))
    assert meant.resolution is None
    assert "2 escalations are waiting (`e1`, `e2`)" in meant.reply


def test_an_answered_escalation_says_by_whom() -> None:
    done = escalation(
        "e1",
        state="answered",
        answer=Resolution(escalation_id="e1", action=Action.ABORT, by="tester"),
        answered_at=datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
    )
    meant = interpret(said("/coord skip e1"), REPO, progress(done))
    assert meant.reply == (
        "@mo: escalation `e1` was already answered (abort) by tester at 2026-01-02 03:04 UTC; "
        "nothing changed."
    )
    meant = interpret(said("/coord skip"), REPO, progress(done))
    assert "no escalation is waiting" in meant.reply and "by tester" in meant.reply


def test_approvals() -> None:
    waiting = Approval(name="before_handoff", question="?")
    meant = interpret(said("/coord approve"), REPO, progress(approvals=[waiting]))
    assert (meant.approval, meant.approval_answer) == ("approved", ApprovalAnswer(by="mo"))
    meant = interpret(said("/coord reject too big"), REPO, progress(approvals=[waiting]))
    assert (meant.approval, meant.approval_answer) == (
        "rejected",
        ApprovalAnswer(reason="too big", by="mo"),
    )
    assert (
        "a rejection needs a reason"
        in interpret(said("/coord reject"), REPO, progress(approvals=[waiting])).reply
    )
    done = waiting.model_copy(update={"state": "approved", "answer": ApprovalAnswer(by="lead")})
    meant = interpret(said("/coord approve"), REPO, progress(approvals=[done]))
    assert meant.approval is None
    assert (
        meant.reply
        == "@mo: approval `before_handoff` was already approved by lead; nothing changed."
    )
