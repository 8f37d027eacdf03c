"""The questions an execution is waiting on, told to a person: since when, the choices with the
exact commands that answer them, and the Markdown the Temporal Web UI shows at the top of a
waiting execution (headings, short lines, code blocks: no tables, which the UI squashes).

Pure (the workflow renders it; the webhook payloads use the choices)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from coordinator.escalation import Approval, Escalation, approval_commands, resolve_commands
from coordinator.report import Progress

OUTPUT_LINES = 10  # of the failing output, in the Web UI

# An execution's static details in the Web UI, fixed at start (no question exists yet): where
# the question will be, and the list query that finds every execution waiting on someone.
STATIC_DETAILS = "\n".join(
    [
        "When this execution waits on a human, **Current Details** lead with the question,",
        "the choices and the commands that answer it.",
        "",
        "Everything waiting on a human, in the workflow list:",
        "",
        "```",
        "CoordWaitingSince IS NOT NULL",
        "```",
    ]
)


class Choice(BaseModel):
    """One answer a person can give: what it does and the `coord` command that gives it."""

    action: str  # retry | skip | abort | approve | reject
    meaning: str
    command: str


def waiting_since(progress: Progress) -> datetime | None:
    """When the oldest question still waiting was asked (None: nothing waits, or no question
    says when it was asked)."""
    asked = [e.raised_at for e in progress.pending_escalations]
    if progress.pending_approval is not None:
        asked.append(progress.pending_approval.asked_at)
    known = [t for t in asked if t is not None]
    return min(known) if known else None


def is_waiting(progress: Progress) -> bool:
    return bool(progress.pending_escalations) or progress.pending_approval is not None


def escalation_choices(execution_id: str, e: Escalation) -> list[Choice]:
    coord, _ = resolve_commands(execution_id, e)
    what = f"task {e.task_id}" if e.task_id else f"this {e.phase} step"
    choices = []
    for command in coord:
        if "--retry" in command:
            meaning = (
                "try again with a higher budget"
                if e.budget_usd is not None
                else "try again, with your guidance in place of ..."
            )
            choices.append(Choice(action="retry", meaning=meaning, command=command))
        elif "--skip" in command:
            meaning = f"leave {what} undone and go on (the report lists it)"
            choices.append(Choice(action="skip", meaning=meaning, command=command))
        else:
            meaning = "stop the execution here (the report says what is done)"
            choices.append(Choice(action="abort", meaning=meaning, command=command))
    return choices


def approval_choices(execution_id: str) -> list[Choice]:
    approve, reject = approval_commands(execution_id)[0]
    return [
        Choice(action="approve", meaning="go on", command=approve),
        Choice(
            action="reject", meaning="stop here, with your reason in place of ...", command=reject
        ),
    ]


def _fenced(lines: list[str], lang: str = "") -> list[str]:
    longest = max((len(line) - len(line.lstrip("`")) for line in lines), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{lang}", *lines, fence]


def _quoted(text: str) -> list[str]:
    """A blockquote keeping the question's own line breaks."""
    return [f"> {line}".rstrip() for line in text.strip().splitlines()] or ["> (no question)"]


def _short_lines(command: str) -> list[str]:
    """A `temporal` command on short lines (shell continuations): the UI does not wrap code."""
    for flag in (" --workflow-id ", " --input "):
        command = command.replace(flag, f" \\\n  {flag.strip()} ")
    return command.split("\n")


def _answers(choices: list[Choice], temporal: list[str]) -> list[str]:
    temporal = [line for command in temporal for line in _short_lines(command)]
    lines = ["**Choices**", ""]
    lines += [f"- **{c.action}**: {c.meaning}" for c in choices] + [""]
    lines += ["**Answer with coord**", "", *_fenced([c.command for c in choices], "sh"), ""]
    lines += ["**or with the Temporal CLI**", "", *_fenced(temporal, "sh"), ""]
    return lines


def escalation_section(execution_id: str, e: Escalation) -> list[str]:
    where = f"task `{e.task_id}`, phase {e.phase}" if e.task_id else f"phase {e.phase}"
    lines = [f"### Escalation `{e.id}`", "", f"{where}, after {e.attempts} attempts", ""]
    lines += ["**Question**", "", *_quoted(e.question), ""]
    if e.reason:
        lines += [f"**Why**: {e.reason}", ""]
    if e.last_error:
        lines += ["**Last error**", "", *_fenced(e.last_error.strip().splitlines()[-5:]), ""]
    tail = [ln.rstrip() for ln in e.output_tail.splitlines() if ln.strip()]
    if tail:
        lines += ["**End of the output**", "", *_fenced(tail[-OUTPUT_LINES:]), ""]
    if e.recommended:
        lines += ["**Suggested**", ""] + [f"- {r}" for r in e.recommended] + [""]
    _, temporal = resolve_commands(execution_id, e)
    return lines + _answers(escalation_choices(execution_id, e), temporal)


def approval_section(execution_id: str, a: Approval) -> list[str]:
    _, temporal = approval_commands(execution_id)
    lines = [f"### Approval `{a.name}`", "", "**Question**", "", *_quoted(a.question), ""]
    return lines + _answers(approval_choices(execution_id), temporal)


def waiting_markdown(progress: Progress) -> list[str]:
    """The Web UI's lead when a question waits: one section per question (nothing if none)."""
    if not is_waiting(progress):
        return []
    since = waiting_since(progress)
    when = f" since {since:%Y-%m-%d %H:%M} UTC" if since is not None else ""
    lines = [f"## Waiting on a human{when}", ""]
    for e in progress.pending_escalations:
        lines += escalation_section(progress.execution_id, e)
    if progress.pending_approval is not None:
        lines += approval_section(progress.execution_id, progress.pending_approval)
    return lines
