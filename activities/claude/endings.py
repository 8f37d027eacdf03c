"""How an attempt of the agent loop ends: one exception per ending, raised where the loop
notices it and caught once, in `AgentLoop.run`, which writes the `end` record. Every ending is
a result for the workflow (a finished, blocked or failed attempt); errors that retrying can
fix are `ApplicationError`s and are not endings."""

from __future__ import annotations

from coordinator.claude import FinishReport, StopReason
from coordinator.work import SUMMARY_CHARS


def clip(text: str) -> str:
    """One line of at most SUMMARY_CHARS characters."""
    line = " ".join(text.split())
    return line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1] + "…"


class AttemptEnded(Exception):
    """The attempt is over; `stop_reason`, `summary` and `detail` say how."""

    stop_reason: StopReason

    def __init__(self, summary: str, *, detail: str = "", finish: FinishReport | None = None):
        super().__init__(summary)
        self.summary = summary
        self.detail = detail  # the feedback for the next attempt, or the notes for the reviewer
        self.finish = finish


class Submitted(AttemptEnded):
    """The model called `finish`: done, or blocked on a human."""

    def __init__(self, finish: FinishReport) -> None:
        notes = finish.notes_for_reviewer
        if finish.findings:
            notes = "\n".join(f"- {f}" for f in finish.findings) + ("\n\n" + notes if notes else "")
        blocked = finish.status == "blocked"
        self.stop_reason = "blocked" if blocked else "finish"
        summary = f"blocked: {finish.summary}" if blocked else finish.summary
        super().__init__(clip(summary), detail=notes, finish=finish)


class AnsweredWithoutTools(AttemptEnded):
    """An `end_turn` without a tool call: done, and the task's gates judge the work."""

    stop_reason = "end_turn"

    def __init__(self, last_text: str) -> None:
        super().__init__(clip(last_text or "done (no summary given)"))


class Refused(AttemptEnded):
    stop_reason = "blocked"

    def __init__(self, last_text: str) -> None:
        super().__init__(clip(f"the model refused: {last_text}"))


class TurnsExhausted(AttemptEnded):
    stop_reason = "max_turns"

    def __init__(self, max_turns: int) -> None:
        super().__init__(f"stopped after {max_turns} turns without finishing")


class BudgetExhausted(AttemptEnded):
    """The attempt's cost or token budget is spent."""

    stop_reason = "budget"


class Stuck(AttemptEnded):
    """The same call gave the same result `repeats` times in a row."""

    stop_reason = "stuck"

    def __init__(self, signature: str, repeats: int) -> None:
        name = signature.split(":", 1)[0]
        super().__init__(
            f"stuck: the same {name} call gave the same result {repeats} times in a row",
            detail=f"Repeated call: {signature[:1000]}",
        )
