"""What a person is told about a waiting execution: since when, the choices and commands, the
Web UI's Markdown and the Slack form of the webhook (pure rendering; the end-to-end checks
are in tests/workflows/test_waiting_on_a_human.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from coordinator.escalation import Approval, Escalation
from coordinator.execution_state import PhaseState, Progress
from coordinator.slack_message import slack_payload
from coordinator.status_comment import webhook_payload
from coordinator.waiting import escalation_choices, waiting_markdown, waiting_since

T0 = datetime(2026, 12, 6, 7, 0, tzinfo=UTC)


def progress(escalations: list[Escalation], approvals: list[Approval]) -> Progress:
    return Progress(
        execution_id="demo-1",
        plan_name="demo",
        phases=[PhaseState(name="implementation", status="running")],
        tasks=[],
        escalations=escalations,
        approvals=approvals,
    )


def escalation(eid: str, raised: datetime, **fields: object) -> Escalation:
    return Escalation(
        id=eid,
        phase="implementation",
        task_id=fields.pop("task_id", "a"),
        reason="3 attempts failed",
        question="Task a fails.\nRetry, skip or abort?",
        attempts=3,
        raised_at=raised,
        **fields,
    )


def test_waiting_since_is_the_oldest_question_still_pending() -> None:
    answered = escalation("a:1", T0 - timedelta(hours=5), state="answered")
    later = escalation("a:2", T0 + timedelta(minutes=3))
    approval = Approval(name="before_handoff", question="Hand off?", asked_at=T0)
    assert waiting_since(progress([answered, later], [approval])) == T0
    assert waiting_since(progress([answered, later], [])) == T0 + timedelta(minutes=3)
    assert waiting_since(progress([answered], [])) is None
    assert waiting_markdown(progress([answered], [])) == []


def test_the_web_ui_markdown_leads_with_questions_in_short_lines_and_no_tables() -> None:
    error = "assert x == 1\n```\nfenced in the error\n```"
    approval = Approval(name="before_handoff", question="Open the pull request?", asked_at=T0)
    text = "\n".join(
        waiting_markdown(progress([escalation("a:1", T0, last_error=error)], [approval]))
    )
    assert text.startswith("## Waiting on a human since 2026-12-06 07:00 UTC\n")
    assert text.index("### Escalation `a:1`") < text.index("### Approval `before_handoff`")
    assert "> Task a fails.\n> Retry, skip or abort?" in text  # its own line breaks
    assert "````\nassert x == 1\n```\nfenced in the error\n```\n````" in text  # a longer fence
    assert "|" not in text.replace("||", "")  # no tables
    assert "- **approve**: go on" in text and "coord reject demo-1 --reason" in text
    assert "temporal workflow update execute \\\n  --workflow-id demo-1 --name approve \\\n" in text
    commands = [line for line in text.splitlines() if not line.startswith("  --input ")]
    assert max(len(line) for line in commands) <= 80


def test_choices_follow_the_kind_of_escalation() -> None:
    budget = escalation("a:1", T0, budget_usd=2.0, spent_usd=2.5)
    gate_round = escalation("layer:1", T0, task_id=None)
    assert [(c.action, c.command) for c in escalation_choices("x", budget)] == [
        ("retry", "coord resolve x a:1 --retry --budget 5.0"),
        ("skip", "coord resolve x a:1 --skip"),
        ("abort", "coord resolve x a:1 --abort"),
    ]
    assert escalation_choices("x", budget)[0].meaning == "try again with a higher budget"
    skip = escalation_choices("x", gate_round)[1]
    assert skip.meaning == "leave this implementation step undone and go on (the report lists it)"


def test_webhook_json_and_slack_forms_carry_the_choices() -> None:
    approval = Approval(name="before_handoff", question="Ship <it> & go?", asked_at=T0)
    p = progress([], [approval])
    coord = webhook_payload(p, event="waiting", text="t")
    [asked] = coord["waiting"]
    assert [c["action"] for c in asked["choices"]] == ["approve", "reject"]
    assert asked["raised_at"] == coord["waiting_since"] == T0.isoformat()

    slack = slack_payload(p, text="t", ui_url="http://ui/x")
    assert slack["text"] == "t"
    sections = [b["text"]["text"] for b in slack["blocks"] if b["type"] == "section"]
    assert sections[0] == "execution `demo-1` · phase setup · <http://ui/x|Temporal UI>"
    assert "*Approval `before_handoff`*\n>Ship &lt;it&gt; &amp; go?" in sections
    assert '```coord approve demo-1\ncoord reject demo-1 --reason "..."```' in sections
