"""What people see of a running execution outside the terminal: the GitHub status comment
and the webhook's JSON. Pure rendering from the progress (the workflow calls it), so it is
deterministic, and small: it travels in workflow history as activity input."""

from __future__ import annotations

from typing import Any

from coordinator.comment_commands import USAGE as COMMENT_USAGE
from coordinator.escalation import Approval, Escalation, approval_commands, resolve_commands
from coordinator.report import ExecutionReport, Progress
from coordinator.waiting import approval_choices, escalation_choices, waiting_since

TAIL_LINES = 15  # of a failure's output, in the comment
_STATUS_TEXT = {
    "running": "running",
    "escalated": "waiting on a human",
    "awaiting_approval": "waiting for approval",
    "completed": "Complete",
    "partial": "Partial",
    "blocked": "Blocked",
    "failed": "Failed",
    "cancelled": "Cancelled",
}


def status_signature(progress: Progress) -> tuple[object, ...]:
    """What a status comment update is worth posting for: phase changes, a human being asked
    or answering, the end, the pull request appearing. Task-by-task progress is not."""
    handoff = progress.handoff
    return (
        progress.status.value,
        progress.phase,
        tuple(p.status for p in progress.phases),
        tuple(e.id for e in progress.pending_escalations),
        progress.pending_approval.name if progress.pending_approval else None,
        handoff.pull_request.number if handoff and handoff.pull_request else None,
    )


def waiting_signature(progress: Progress) -> tuple[str, ...]:
    """The questions pending right now: a webhook goes out when a new one appears."""
    pending = [f"escalation:{e.id}" for e in progress.pending_escalations]
    if progress.pending_approval:
        pending.append(f"approval:{progress.pending_approval.name}")
    return tuple(pending)


def _fenced(lines: list[str], lang: str = "") -> list[str]:
    longest = max((len(line) - len(line.lstrip("`")) for line in lines), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{lang}", *lines, fence]


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _cell(text: str) -> str:
    return _one_line(text, 200).replace("|", "\\|")


def escalation_markdown(execution_id: str, e: Escalation) -> list[str]:
    where = f"task `{e.task_id}`, phase {e.phase}" if e.task_id else f"phase {e.phase}"
    lines = [
        f"**Escalation `{e.id}`** ({where}, {e.attempts} attempts): {_one_line(e.reason)}",
        "",
        f"> {_one_line(e.question, 1000)}",
        "",
    ]
    if e.last_error:
        error = _one_line(e.last_error).replace("`", "'")
        lines += [f"Last error: `{error}`", ""]
    if e.failures:
        lines += ["Failed attempts, oldest first:", ""]
        lines += [f"- attempt {f.attempt}: {_one_line(f.error)}" for f in e.failures] + [""]
    tail = [ln.rstrip() for ln in e.output_tail.replace("\r\n", "\n").splitlines() if ln.strip()]
    if tail:
        lines += [
            "<details><summary>end of the output</summary>",
            "",
            *_fenced(tail[-TAIL_LINES:]),
            "",
            "</details>",
            "",
        ]
    if e.recommended:
        lines += [f"- {_one_line(r)}" for r in e.recommended] + [""]
    coord, temporal = resolve_commands(execution_id, e)
    lines += ["Answer with one of:", "", *_fenced(coord, "sh"), ""]
    lines += ["or with the Temporal CLI:", "", *_fenced(temporal, "sh"), ""]
    return lines


def approval_markdown(execution_id: str, a: Approval) -> list[str]:
    coord, temporal = approval_commands(execution_id)
    return [
        f"**Approval `{a.name}`**: {_one_line(a.question, 1000)}",
        "",
        "Answer with one of:",
        "",
        *_fenced(coord, "sh"),
        "",
        "or with the Temporal CLI:",
        "",
        *_fenced(temporal, "sh"),
        "",
    ]


def render_status(
    progress: Progress, *, ui_url: str | None = None, report: ExecutionReport | None = None
) -> str:
    """The status comment's Markdown (the activity adds the hidden marker line)."""
    status = report.status if report else _STATUS_TEXT.get(progress.status.value, "")
    done = sum(1 for t in progress.tasks if t.status == "passed")
    facts = [
        f"execution `{progress.execution_id}`",
        f"phase **{progress.phase}**" if report is None else "finished",
        f"{done} of {len(progress.tasks)} tasks done",
    ]
    handoff = progress.handoff
    if handoff and handoff.pull_request:
        facts.append(f"pull request [#{handoff.pull_request.number}]({handoff.pull_request.url})")
    if ui_url:
        facts.append(f"[Temporal UI]({ui_url})")
    lines = [f"### coord: {progress.plan_name}: {status}", "", " · ".join(facts), ""]
    if report is None and (progress.pending_escalations or progress.pending_approval):
        lines += ["#### Waiting on a human", ""]
        for e in progress.pending_escalations:
            lines += escalation_markdown(progress.execution_id, e)
        if progress.pending_approval:
            lines += approval_markdown(progress.execution_id, progress.pending_approval)
        if handoff and handoff.comments_read_to is not None:  # read for `/coord` answers
            lines += [f"Or answer right here (write access needed): {COMMENT_USAGE}.", ""]
    lines += ["| phase | status | summary |", "|---|---|---|"]
    # The end's phases are the report's: those that did not run say so (coordinator/outcome).
    phases = report.phases if report is not None else progress.phases
    lines += [f"| {p.name} | {p.status} | {_cell(p.summary)} |" for p in phases]
    if report is not None:
        lines += ["", "#### What a human must do", ""]
        lines += [f"- {_one_line(item, 1000)}" for item in report.human_todo] or ["- nothing"]
        if report.problems:
            lines += ["", "#### Problems", ""]
            lines += [f"- {_one_line(p, 1000)}" for p in report.problems]
    return "\n".join(lines) + "\n"


def webhook_payload(
    progress: Progress,
    *,
    event: str,
    text: str,
    ui_url: str | None = None,
    report: ExecutionReport | None = None,
) -> dict[str, Any]:
    """The JSON a `notify` webhook receives. `text` makes it a valid Slack/Mattermost
    incoming-webhook message as it is; the other keys are for programs."""
    eid = progress.execution_id
    waiting: list[dict[str, Any]] = []
    for e in progress.pending_escalations:
        coord, temporal = resolve_commands(eid, e)
        waiting.append(
            {
                "kind": "escalation",
                "id": e.id,
                "task_id": e.task_id,
                "phase": e.phase,
                "reason": e.reason,
                "question": e.question,
                "last_error": e.last_error,
                "raised_at": e.raised_at.isoformat() if e.raised_at else None,
                "choices": [c.model_dump() for c in escalation_choices(eid, e)],
                "commands": coord,
                "temporal_commands": temporal,
            }
        )
    if progress.pending_approval:
        a = progress.pending_approval
        coord, temporal = approval_commands(eid)
        waiting.append(
            {
                "kind": "approval",
                "id": a.name,
                "question": a.question,
                "raised_at": a.asked_at.isoformat() if a.asked_at else None,
                "choices": [c.model_dump() for c in approval_choices(eid)],
                "commands": coord,
                "temporal_commands": temporal,
            }
        )
    handoff = progress.handoff
    since = waiting_since(progress) if waiting else None
    return {
        "event": event,
        "text": text,
        "execution_id": eid,
        "plan": progress.plan_name,
        "status": report.status if report else progress.status.value,
        "phase": progress.phase,
        "waiting": waiting,
        "waiting_since": since.isoformat() if since else None,
        "human_todo": report.human_todo if report else [],
        "pull_request": handoff.pull_request.url if handoff and handoff.pull_request else None,
        "ui_url": ui_url,
    }


def webhook_text(
    progress: Progress, *, ui_url: str | None = None, report: ExecutionReport | None = None
) -> str:
    """A few lines for a chat: what happened and the command that answers."""
    eid = progress.execution_id
    head = f"coord: plan {progress.plan_name} (execution {eid})"
    link = f"\n{ui_url}" if ui_url else ""
    if report is not None:
        lines = [f"{head} ended {report.status}."]
        handoff = progress.handoff
        if handoff and handoff.pull_request:
            lines.append(f"Pull request: {handoff.pull_request.url}")
        lines += [f"- {_one_line(item)}" for item in report.human_todo]
        return "\n".join(lines) + link
    lines = [f"{head} is waiting on a human."]
    for e in progress.pending_escalations:
        where = f"task {e.task_id}" if e.task_id else f"phase {e.phase}"
        lines.append(f"- escalation {e.id} ({where}): {_one_line(e.question)}")
        if e.last_error:
            lines.append(f"  last error: {_one_line(e.last_error)}")
        lines.append(f"  answer: {resolve_commands(eid, e)[0][0]}")
    if progress.pending_approval:
        a = progress.pending_approval
        lines.append(f"- approval {a.name}: {_one_line(a.question)}")
        lines.append(f"  answer: {approval_commands(eid)[0][0]}")
    return "\n".join(lines) + link
