"""The `notify` webhook's Slack form (`notify.format: slack`): an incoming-webhook message,
`text` (the notification's fallback) and `blocks` (the question, the choices, the commands
that answer it, in code blocks a person copies). Pure rendering from the progress."""

from __future__ import annotations

from typing import Any

from coordinator.escalation import Approval, Escalation, approval_commands, resolve_commands
from coordinator.report import ExecutionReport, Progress
from coordinator.waiting import Choice, approval_choices, escalation_choices

HEADER_LIMIT = 150  # Slack's limits: a header's plain text, a section's mrkdwn
SECTION_LIMIT = 3000


def _escape(text: str) -> str:
    """Slack mrkdwn's three control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _section(mrkdwn: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(mrkdwn, SECTION_LIMIT)}}


def _code(lines: list[str]) -> dict[str, Any]:
    body = _cut("\n".join(_escape(line).replace("```", "'''") for line in lines), SECTION_LIMIT - 8)
    return _section(f"```{body}```")


def _quote(text: str) -> str:
    return "\n".join(f">{_escape(line)}" for line in text.strip().splitlines()) or ">(no question)"


def _answer_blocks(choices: list[Choice], temporal: list[str]) -> list[dict[str, Any]]:
    listed = "\n".join(f"• *{c.action}*: {_escape(c.meaning)}" for c in choices)
    return [
        _section(f"*Choices*\n{listed}"),
        _section("*Answer with coord*"),
        _code([c.command for c in choices]),
        _section("*or with the Temporal CLI*"),
        _code(temporal),
    ]


def _escalation_blocks(execution_id: str, e: Escalation) -> list[dict[str, Any]]:
    where = f"task `{e.task_id}`, phase {e.phase}" if e.task_id else f"phase {e.phase}"
    head = f"*Escalation `{_escape(e.id)}`* ({_escape(where)}, {e.attempts} attempts)"
    blocks = [_section(f"{head}\n{_quote(e.question)}")]
    if e.last_error:
        blocks += [_section("*Last error*"), _code(e.last_error.strip().splitlines()[-5:])]
    _, temporal = resolve_commands(execution_id, e)
    return blocks + _answer_blocks(escalation_choices(execution_id, e), temporal)


def _approval_blocks(execution_id: str, a: Approval) -> list[dict[str, Any]]:
    _, temporal = approval_commands(execution_id)
    blocks = [_section(f"*Approval `{_escape(a.name)}`*\n{_quote(a.question)}")]
    return blocks + _answer_blocks(approval_choices(execution_id), temporal)


def slack_payload(
    progress: Progress,
    *,
    text: str,
    ui_url: str | None = None,
    report: ExecutionReport | None = None,
) -> dict[str, Any]:
    """A Slack incoming-webhook message: `text` is what the notification shows."""
    eid = progress.execution_id
    plan = progress.plan_name
    title = f"coord: {plan} ended {report.status}" if report else f"coord: {plan} waits on you"
    facts = [f"execution `{_escape(eid)}`", f"phase {_escape(progress.phase)}"]
    if ui_url:
        facts.append(f"<{ui_url}|Temporal UI>")
    handoff = progress.handoff
    if handoff and handoff.pull_request:
        facts.append(f"<{handoff.pull_request.url}|pull request #{handoff.pull_request.number}>")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, HEADER_LIMIT)}},
        _section(" · ".join(facts)),
    ]
    if report is not None:
        todo = "\n".join(f"• {_escape(item)}" for item in report.human_todo) or "• nothing"
        return {"text": text, "blocks": [*blocks, _section(f"*What a human must do*\n{todo}")]}
    for e in progress.pending_escalations:
        blocks += [{"type": "divider"}, *_escalation_blocks(eid, e)]
    if progress.pending_approval is not None:
        blocks += [{"type": "divider"}, *_approval_blocks(eid, progress.pending_approval)]
    return {"text": text, "blocks": blocks}
