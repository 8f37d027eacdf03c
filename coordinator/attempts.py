"""A task's failed attempts: what the next attempt is told, and what a human is shown.

Every attempt's failure is kept (oldest first, each trimmed), not only the last one: the
fixer of attempt 3 still reads why attempt 1 failed (a merge conflict, say), and the
escalation after the third failure lists all three. Pure: no I/O.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from coordinator.conflicts import clip

# One attempt's failure as it is kept: three of them fit in a fixer's feedback, and an
# escalation (which travels in workflow history) stays small.
FAILURE_CHARS = 2400
ERROR_CHARS = 300


class AttemptFailure(BaseModel):
    attempt: int = Field(ge=1)  # the task's attempt number (it counts on across retries)
    error: str  # one line: what failed
    detail: str = ""  # what the fixer was given: gate output, the conflict, the output tail

    @classmethod
    def of(cls, attempt: int, error: str, detail: str = "") -> AttemptFailure:
        line = " ".join(error.split())
        return cls(
            attempt=attempt,
            error=clip(line, ERROR_CHARS),
            detail=clip(detail.strip(), FAILURE_CHARS),
        )

    def text(self, limit: int = FAILURE_CHARS) -> str:
        head = f"Attempt {self.attempt} failed: {self.error}"
        if not self.detail:
            return head
        room = limit - len(head) - 1
        return f"{head}\n{clip(self.detail, room)}" if room > 0 else head[: max(0, limit)]


def feedback_for(failures: list[AttemptFailure], note: str = "", *, limit: int) -> str:
    """What the next attempt is told: every failure so far, oldest first, then `note` (what
    is new since: the conflict replayed into the worktree, a raised budget), all within
    `limit` characters, each failure trimmed alike so that none is lost."""
    note = clip(note.strip(), limit // 2) if note.strip() else ""
    if not failures:
        return note
    intro = "Earlier attempts of this task failed; every failure, oldest first:"
    room = limit - len(intro) - (len(note) + 2 if note else 0) - 2 * (len(failures) + 1)
    share = max(0, room // len(failures))
    parts = [intro, *(f.text(share) for f in failures)]
    if note:
        parts.append(note)
    return "\n\n".join(parts)[:limit]
