"""Three strikes, then a human: the one loop every phase runs its failing work through.

A round is up to `strikes` attempts. An attempt ends `Done` (the loop returns its value) or
misses: a strike, a miss that is no strike (the attempt runs again with the same number: a
raised budget), one that starts the round over (its host was lost) or one no further attempt
can help (ask at once). After the round's last strike the loop asks a human: a `Retry`
starts three strikes over with the human's guidance, anything else ends the loop with what
the phase made of the answer. Workflow code: deterministic, no I/O."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from coordinator.escalation import Action, Resolution

ATTEMPTS = 3  # three strikes, then a human

T = TypeVar("T")


class Miss(Enum):
    STRIKE = "strike"  # a failed attempt
    NOT_A_STRIKE = "not a strike"  # run the same attempt again (the budget was raised)
    START_OVER = "start over"  # the round again from its first attempt (a host was lost)
    ASK_NOW = "ask now"  # no further attempt can help: a human decides


@dataclass(frozen=True)
class Done(Generic[T]):
    value: T


@dataclass(frozen=True)
class Retry:
    guidance: str = ""


def retry_or(answer: Resolution, give_up: Callable[[Resolution], T]) -> Retry | Done[T]:
    """A human's answer: three strikes again with the guidance, or what giving up returns."""
    if answer.action == Action.RETRY:
        return Retry(answer.guidance)
    return Done(give_up(answer))


class UntilResolved(Generic[T]):
    """The loop's state: the attempts so far and the guidance of the last answer."""

    def __init__(self, *, strikes: int = ATTEMPTS, guidance: str = "") -> None:
        self.strikes = strikes
        self.tries = 0  # attempts started, over every round
        self.guidance = guidance  # the human's, for this round

    def take_guidance(self) -> str:
        """The guidance, given once: to the first attempt (or fix) that asks for it."""
        guidance, self.guidance = self.guidance, ""
        return guidance

    async def run(
        self,
        attempt: Callable[[int], Awaitable[Done[T] | Miss]],
        ask: Callable[[], Awaitable[Retry | Done[T]]],
    ) -> T:
        """`attempt(n)` for n = 1, 2, 3 until one is done; then `ask()`, and again on retry."""
        while True:
            strike = 0
            while strike < self.strikes:
                strike += 1
                self.tries += 1
                outcome = await attempt(strike)
                if isinstance(outcome, Done):
                    return outcome.value
                if outcome is Miss.NOT_A_STRIKE:
                    strike -= 1
                elif outcome is Miss.START_OVER:
                    strike = 0
                elif outcome is Miss.ASK_NOW:
                    break
            answer = await ask()
            if isinstance(answer, Done):
                return answer.value
            self.guidance = answer.guidance
