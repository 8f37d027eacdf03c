"""The agent loop on its own: no Temporal server, no activity context (calling
`activity.info()` or `activity.heartbeat()` here would raise), just the loop, its tools, the
real `anthropic` client and the local Messages API server. Each ending is an exception caught
once in `run`; a retried attempt resumes its transcript without running a tool again."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.claude.loop import AgentLoop, LoopOutcome
from activities.claude.toolbox import BashSetup
from activities.claude.transcript import Transcript
from activities.jail import Sandbox
from coordinator.claude import ClaudeSettings
from coordinator.specialists import parse_specialist
from coordinator.tool_rules import permissions_for
from coordinator.work import SpecialistRequest
from tests.anthropic_server import (
    Fault,
    MessagesAPI,
    Turn,
    finish,
    reply,
    serve_messages_api,
    tool_use,
    usage,
)

EDITOR = "str_replace_based_edit_tool"
DEFINITION = "---\nname: coder\ndescription: writes code\nmodel: sonnet\n---\nYou code.\n"


@pytest.fixture
def api() -> Iterator[MessagesAPI]:
    with serve_messages_api() as server:
        yield server


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    root = tmp_path / "wt"
    root.mkdir()
    (root / "app.py").write_text("def greet():\n    return 'hi'\n")
    return root


def make_loop(
    api: MessagesAPI, worktree: Path, *, resuming: bool = False, **changes: Any
) -> AgentLoop:
    spec, _ = parse_specialist(DEFINITION, source="coder.md")
    request = SpecialistRequest(
        execution_id="exec-1",
        task_id="t1",
        task_title="Make greet shout",
        task_prompt="greet() must return 'HI'",
        specialist="coder",
        backend="claude",
        timeout_s=600,
        cwd=str(worktree),
        attempt=1,
    ).model_copy(update=changes)
    settings = ClaudeSettings()
    artifacts = worktree.parent / "artifacts"
    return AgentLoop(
        system="You code.",
        request=request,
        spec=spec,
        model=settings.resolve_model(spec.model, None),
        perms=permissions_for(spec.tools),
        settings=settings,
        transcript=Transcript(artifacts / "attempt-1.transcript.jsonl"),
        client=anthropic.AsyncAnthropic(
            api_key=api.api_key, base_url=api.base_url, max_retries=0, timeout=30
        ),
        bash=BashSetup(
            env={"PATH": os.environ.get("PATH", os.defpath)},
            sandbox=Sandbox(bwrap=None),
            slot=artifacts / ".specialist-processes",
            log_dir=artifacts / "attempt-1.bash",
        ),
        where="task t1 (coder)",
        resuming=resuming,
        activity_attempt=2 if resuming else 1,
        logger=logging.getLogger("test"),
    )


def test_there_is_no_activity_context_here() -> None:
    with pytest.raises(RuntimeError):
        activity.info()


async def test_the_loop_edits_and_submits_without_temporal(
    api: MessagesAPI, worktree: Path
) -> None:
    api.script(
        reply(
            tool_use(
                EDITOR,
                {"command": "str_replace", "path": "app.py", "old_str": "'hi'", "new_str": "'HI'"},
            )
        ),
        reply(finish("greet shouts", files_changed=["app.py"])),
    )
    loop = make_loop(api, worktree)
    outcome = await loop.run()
    assert (outcome.stop_reason, outcome.summary, outcome.turns) == ("finish", "greet shouts", 2)
    assert outcome.model_calls == 2 and outcome.usage.input_tokens > 0
    assert (worktree / "app.py").read_text() == "def greet():\n    return 'HI'\n"
    assert loop.heartbeat_details()["turn"] == 2
    ends = [r for r in loop.transcript.records() if r["kind"] == "end"]
    assert [e["stop_reason"] for e in ends] == ["finish"]


@pytest.mark.parametrize(
    ("replies", "changes", "reason", "summary"),
    [
        ([reply("All done, I think.")], {}, "end_turn", "All done, I think."),
        ([reply("No.", stop_reason="refusal")], {}, "blocked", "the model refused: No."),
        ([reply(finish("need a human", status="blocked"))], {}, "blocked", "blocked: need a human"),
        (
            [reply(tool_use("bash", {"command": "true"}))] * 2,
            {"max_turns": 2},
            "max_turns",
            "stopped after 2 turns without finishing",
        ),
        (
            [reply(tool_use("bash", {"command": "true"}), usage=usage(900, 200))],
            {"max_tokens": 1000},
            "budget",
            "token budget reached: 1100 of 1000 tokens",
        ),
        (
            [reply(tool_use("bash", {"command": "echo same"}))] * 3,
            {},
            "stuck",
            "stuck: the same bash call gave the same result 3 times in a row",
        ),
    ],
)
async def test_every_ending_is_an_outcome(
    api: MessagesAPI,
    worktree: Path,
    replies: list[Any],
    changes: dict[str, Any],
    reason: str,
    summary: str,
) -> None:
    api.script(*replies)
    outcome: LoopOutcome = await make_loop(api, worktree, **changes).run()
    assert (outcome.stop_reason, outcome.summary) == (reason, summary)
    assert len(api.requests) == len(replies)  # no model call after the ending


async def test_a_retried_attempt_resumes_without_running_a_tool_again(
    api: MessagesAPI, worktree: Path
) -> None:
    api.script(
        reply(tool_use("bash", {"command": "echo ran >> count.txt"}), usage=usage(100, 50)),
        Turn(reply(finish("counted once")), errors=[Fault(500)]),
    )
    with pytest.raises(ApplicationError) as caught:
        await make_loop(api, worktree).run()
    assert not caught.value.non_retryable
    (spent,) = caught.value.details  # the money of a failed attempt travels with its error
    assert spent["tokens_out"] == 50
    outcome = await make_loop(api, worktree, resuming=True).run()
    assert (outcome.stop_reason, outcome.resumed_from_turn, outcome.turns) == ("finish", 1, 2)
    assert (worktree / "count.txt").read_text() == "ran\n"
    assert outcome.usage.output_tokens > 50  # the first attempt's call is counted too
