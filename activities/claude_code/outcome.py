"""A Claude Code run's end, mapped onto the engine's rules.

- success: the attempt is done (its gates judge the work); a reviewer's verdict is read
  from its last message (`VERDICT: ...`), and without one it does not approve;
- max turns, an error result: a failed attempt whose feedback goes to the fixer;
- the budget (Claude Code's `max_budget_usd`, or the token limit coord watches): a budget
  stop, which asks the human about the budget rather than count as a failure;
- 401 / 403: non-retryable, escalated at once, naming ANTHROPIC_API_KEY;
- 429, 529, 5xx, a dropped connection, a process that died: retryable, so the activity
  is retried (Temporal's policy, waiting as asked) and resumes the session; these are not
  attempts of the task.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.claude_code.session import RunEnd
from coordinator.claude import AgentAttempt, AttemptSpend, FinishReport, StopReason
from coordinator.claude_code import read_verdict
from coordinator.work import OUTPUT_TAIL_BYTES, SUMMARY_CHARS, SpecialistRequest, SpecialistResult

PASSING_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
STDERR_TAIL = 10


def spend_details(end: RunEnd) -> dict[str, Any]:
    """What the run spent, as the workflows read it from a failed activity's details."""
    return AttemptSpend(
        tokens_in=end.usage.total - end.usage.output_tokens,
        tokens_out=end.usage.output_tokens,
        cost_usd=end.cost_usd,
    ).model_dump() | {"session_id": end.session_id}


def api_error(end: RunEnd, where: str, model: str) -> ApplicationError | None:
    """The error to raise for a result that reports an API failure, or None."""
    result = end.result or {}
    status = result.get("api_error_status")
    if not result.get("is_error") or not isinstance(status, int):
        return None
    said = _clip(str(result.get("result") or ""))
    where = f"{where}: Claude Code's API call failed with {status}: {said}"
    if status in (401, 403):
        return ApplicationError(
            f"{where}. Check ANTHROPIC_API_KEY on the worker (and its permissions for model "
            f"{model}); retrying cannot fix it",
            spend_details(end),
            type="AnthropicCredentials",
            non_retryable=True,
        )
    if status in PASSING_STATUSES:
        return ApplicationError(
            f"{where}; the activity is retried and resumes session {end.session_id}",
            spend_details(end),
            type="AnthropicOverloaded" if status == 529 else "AnthropicUnavailable",
            next_retry_delay=timedelta(seconds=30) if status in (429, 529) else None,
        )
    return ApplicationError(
        f"{where}. This is a bug or a limit in the request, not a passing problem",
        spend_details(end),
        type="AnthropicInvalidRequest",
        non_retryable=True,
    )


def attempt_result(
    request: SpecialistRequest,
    specialist: str,
    model: str,
    end: RunEnd,
    transcript: str,
    duration_s: float,
    *,
    max_turns: int,
) -> SpecialistResult:
    """A run that ended (not by an API failure) as the attempt's result."""
    text = str((end.result or {}).get("result") or end.last_text or "")
    reason, summary = _stop(request, end, text, max_turns=max_turns)
    finish = None
    ok = reason == "end_turn"
    if request.role == "review":
        verdict, findings = read_verdict(text)
        finish = FinishReport(
            status="done", summary=_clip(text), verdict=verdict, findings=findings
        )
        ok = ok and verdict == "approve"
    detail = text if reason != "end_turn" or request.role == "review" else ""
    if reason == "error" and end.stderr:
        detail += "\n" + "\n".join(end.stderr[-STDERR_TAIL:])
    tail = summary + ("\n\n" + detail.strip() if detail.strip() else "")
    usage = end.usage
    return SpecialistResult(
        task_id=request.task_id,
        specialist=specialist,
        attempt=request.attempt,
        ok=ok,
        summary=summary,
        exit_code=None,
        timed_out=end.timed_out,
        duration_s=duration_s,
        output_tail=tail[-OUTPUT_TAIL_BYTES:],
        log_path=transcript,
        tokens_in=usage.total - usage.output_tokens,
        tokens_out=usage.output_tokens,
        cost_usd=end.cost_usd,
        agent=AgentAttempt(
            model=model,
            turns=end.turns,
            stop_reason=reason,
            transcript_path=transcript,
            usage=usage,
            finish=finish,
            resumed_from_turn=max(1, end.turns_before) if end.resumed else 0,
        ),
    )


def _stop(
    request: SpecialistRequest, end: RunEnd, text: str, *, max_turns: int
) -> tuple[StopReason, str]:
    """Why the run stopped, and the attempt's one-line summary of it."""
    result = end.result or {}
    subtype = str(result.get("subtype") or "")
    if end.timed_out:
        return "error", f"timed out after {request.timeout_s} s"
    if end.token_budget_hit:
        return "budget", end.token_budget_hit
    if subtype == "error_max_budget_usd":
        limit = request.max_cost_usd or 0.0
        return "budget", f"budget reached: ${end.cost_usd or 0:.2f} of ${limit:.2f}"
    if subtype == "error_max_turns":
        return "max_turns", f"stopped after {max_turns} turns without finishing"
    if subtype == "success" and not result.get("is_error"):
        return "end_turn", _clip(text or "done (no summary given)")
    errors = "; ".join(str(e) for e in result.get("errors") or []) or text
    return "error", _clip(f"Claude Code ended with {subtype}: {errors}")


def _clip(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1] + "…"
