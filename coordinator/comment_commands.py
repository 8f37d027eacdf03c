"""Answers written as comments on the plan's GitHub issue or pull request: `/coord skip`,
`/coord retry <guidance>`, `/coord abort`, `/coord approve`, `/coord reject <reason>`.

What a comment means for the questions an execution has (`interpret`): an answer to take
(the same `Resolution` or `ApprovalAnswer` the CLI sends, `by` the GitHub login), or only a
reply (refused: no write access; not understood; which escalation; already answered). The
activity's models are here too. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from coordinator.escalation import Action, ApprovalAnswer, Escalation, Resolution
from coordinator.report import Progress

PREFIX = "/coord"
# Permissions of GitHub's collaborator API that may answer (admin, maintain and write).
WRITERS = frozenset({"admin", "maintain", "write"})
MAX_COMMENT_CHARS = 4_000  # of a command comment kept in history
USAGE = (
    "`/coord retry [ESCALATION-ID] GUIDANCE`, `/coord skip [ESCALATION-ID]`, "
    "`/coord abort [ESCALATION-ID]`, `/coord approve`, `/coord reject REASON`"
)


def reply_marker(execution_id: str, comment_id: int) -> str:
    """The first line of the execution's reply to one comment (found again on a retry)."""
    return f"<!-- coord:reply:{execution_id}:{comment_id} -->"


def is_command(body: str) -> bool:
    first = body.strip().split(maxsplit=1)
    return bool(first) and first[0].lower() == PREFIX


class CommandComment(BaseModel):
    """A comment that starts with `/coord`, and whether its author may answer."""

    id: int
    login: str
    body: str = Field(max_length=MAX_COMMENT_CHARS)
    permission: str  # GitHub's: admin, write, read or none
    url: str = ""

    @property
    def can_write(self) -> bool:
        return self.permission in WRITERS


class CommandsRequest(BaseModel):
    execution_id: str
    repo: str
    number: int
    after_id: int | None = None  # None: only find where the comments end now


class CommandsResult(BaseModel):
    commands: list[CommandComment] = Field(default_factory=list)
    last_id: int = 0  # the newest comment seen (commands or not)


class ReplyRequest(BaseModel):
    execution_id: str
    repo: str
    number: int
    comment_id: int  # the comment replied to
    body: str


class ReplyRef(BaseModel):
    id: int
    created: bool = False


@dataclass(frozen=True)
class Interpretation:
    """An answer to take (then `reply` acknowledges it) or only a reply."""

    reply: str
    resolution: Resolution | None = None
    approval: Literal["approved", "rejected"] | None = None
    approval_answer: ApprovalAnswer | None = None


def interpret(comment: CommandComment, repo: str, progress: Progress) -> Interpretation:
    who = f"@{comment.login}"
    if not comment.can_write:
        return Interpretation(
            f"{who}: not taken. Only people with write access to `{repo}` can answer this "
            f"execution (your permission: {comment.permission}). Nothing changed."
        )
    words = comment.body.strip().split(maxsplit=2)
    verb = words[1].lower() if len(words) > 1 else ""
    rest = words[2].strip() if len(words) > 2 else ""
    if verb in ("approve", "reject"):
        return _approval(verb, rest, who, progress)
    if verb in (a.value for a in Action):
        return _escalation(Action(verb), rest, who, progress)
    return Interpretation(
        f"{who}: `{_first_line(comment.body)}` is not a command I understand. I understand: "
        f"{USAGE}. {_waiting(progress)}"
    )


def _approval(verb: str, reason: str, who: str, progress: Progress) -> Interpretation:
    approval = progress.pending_approval
    if approval is None:
        answered = [a for a in progress.approvals if a.state != "pending"]
        if answered:
            last = answered[-1]
            by = last.answer.by if last.answer and last.answer.by else "someone"
            return Interpretation(
                f"{who}: approval `{last.name}` was already {last.state} by {by}; nothing changed."
            )
        return Interpretation(f"{who}: no approval is waiting. {_waiting(progress)}")
    if verb == "reject" and not reason:
        return Interpretation(f"{who}: a rejection needs a reason: `/coord reject REASON`.")
    state: Literal["approved", "rejected"] = "approved" if verb == "approve" else "rejected"
    answer = ApprovalAnswer(reason=reason if verb == "reject" else "", by=who[1:])
    return Interpretation(
        f"{who}: taken: `{approval.name}` {state}" + (f" ({reason})" if reason else "") + ".",
        approval=state,
        approval_answer=answer,
    )


def _escalation(action: Action, rest: str, who: str, progress: Progress) -> Interpretation:
    named, text = _named_escalation(rest, progress)
    pending = progress.pending_escalations
    if named is None:
        if not pending:
            return Interpretation(f"{who}: no escalation is waiting. {_answered(progress)}")
        if len(pending) > 1:
            ids = ", ".join(f"`{e.id}`" for e in pending)
            return Interpretation(
                f"{who}: {len(pending)} escalations are waiting ({ids}): say which, e.g. "
                f"`/coord {action.value} {pending[0].id}"
                + (" GUIDANCE`." if action == Action.RETRY else "`.")
            )
        named = pending[0]
    if named.state != "pending":
        return Interpretation(f"{who}: {_answered_line(named)}; nothing changed.")
    if action == Action.RETRY and not text:
        return Interpretation(
            f"{who}: a retry needs guidance for the next attempts: "
            f"`/coord retry {named.id} GUIDANCE`."
        )
    if action != Action.RETRY and text:
        return Interpretation(
            f"{who}: `/coord {action.value}` takes no text after the escalation id (I read "
            f"`{text[:80]}`). I understand: {USAGE}. {_waiting(progress)}"
        )
    resolution = Resolution(
        escalation_id=named.id,
        action=action,
        guidance=text if action == Action.RETRY else "",
        by=who[1:],
    )
    return Interpretation(f"{who}: taken: escalation `{named.id}`: {action.value}.", resolution)


def _named_escalation(rest: str, progress: Progress) -> tuple[Escalation | None, str]:
    """The escalation the comment's first word names (with or without a trailing colon),
    and the text after it; else None and all the text."""
    first, _, after = rest.partition(" ")
    wanted = first.rstrip(":")
    for escalation in reversed(progress.escalations):
        if wanted and escalation.id == wanted:
            return escalation, after.strip()
    return None, rest


def _answered_line(escalation: Escalation) -> str:
    answer = escalation.answer
    if escalation.state == "answered" and answer is not None:
        by = answer.by or "someone"
        when = _when(escalation.answered_at)
        return (
            f"escalation `{escalation.id}` was already answered ({answer.action.value}) by "
            f"{by}{when}"
        )
    return f"escalation `{escalation.id}` is {escalation.state.replace('_', ' ')}"


def _answered(progress: Progress) -> str:
    done = [e for e in progress.escalations if e.state != "pending"]
    return (_answered_line(done[-1]) + ".") if done else ""


def _waiting(progress: Progress) -> str:
    ids = [f"`{e.id}`" for e in progress.pending_escalations]
    approval = progress.pending_approval
    if approval is not None:
        ids.append(f"approval `{approval.name}`")
    return ("Waiting: " + ", ".join(ids) + ".") if ids else "Nothing is waiting."


def _when(at: datetime | None) -> str:
    return f" at {at:%Y-%m-%d %H:%M} UTC" if at is not None else ""


def _first_line(body: str) -> str:
    line = body.strip().splitlines()[0] if body.strip() else ""
    return line[:120].replace("`", "'")
