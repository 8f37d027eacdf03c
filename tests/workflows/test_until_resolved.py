"""Three strikes, then a human (workflows/until_resolved.py), without a server: which attempt
runs when, when a human is asked, and what a retry carries."""

from __future__ import annotations

from coordinator.escalation import Action, Resolution
from workflows.until_resolved import Done, Miss, Retry, UntilResolved, retry_or


async def test_three_strikes_then_a_retry_with_guidance_then_done() -> None:
    until = UntilResolved[str]()
    seen: list[tuple[int, int, str]] = []
    asked = 0

    async def attempt(strike: int) -> Done[str] | Miss:
        seen.append((strike, until.tries, until.guidance))
        return Done("passed") if until.tries == 5 else Miss.STRIKE

    async def ask() -> Retry | Done[str]:
        nonlocal asked
        asked += 1
        return retry_or(Resolution(action=Action.RETRY, guidance="look at X"), str)

    assert await until.run(attempt, ask) == "passed"
    assert asked == 1
    assert seen == [(1, 1, ""), (2, 2, ""), (3, 3, ""), (1, 4, "look at X"), (2, 5, "look at X")]
    assert until.take_guidance() == "look at X" and until.guidance == ""


async def test_a_miss_that_is_no_strike_runs_the_same_attempt_again() -> None:
    outcomes = [Miss.STRIKE, Miss.NOT_A_STRIKE, Miss.STRIKE, Miss.START_OVER]
    outcomes += [Miss.STRIKE, Miss.STRIKE, Miss.STRIKE]
    strikes: list[int] = []

    async def attempt(strike: int) -> Done[str] | Miss:
        strikes.append(strike)
        return outcomes.pop(0)

    async def ask() -> Retry | Done[str]:
        return retry_or(Resolution(action=Action.SKIP), lambda answer: answer.action.value)

    assert await UntilResolved[str]().run(attempt, ask) == "skip"
    assert strikes == [1, 2, 2, 3, 1, 2, 3]


async def test_ask_now_asks_before_the_last_strike() -> None:
    strikes: list[int] = []

    async def attempt(strike: int) -> Done[str] | Miss:
        strikes.append(strike)
        return Miss.ASK_NOW

    async def ask() -> Retry | Done[str]:
        return Done("asked")

    assert await UntilResolved[str](strikes=3).run(attempt, ask) == "asked"
    assert strikes == [1]
