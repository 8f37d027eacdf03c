"""The Claude specialist activity, run with Temporal's ActivityEnvironment against the local
Messages API server, with the real `anthropic` client: tools really change files, the loop
ends as the issue says, and errors are classified for Temporal's retries."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.claude.agent import ClaudeSpecialistActivities
from coordinator.claude import ClaudeSettings
from coordinator.work import SpecialistRequest, SpecialistResult
from tests.anthropic_server import (
    Fault,
    MessagesAPI,
    RecordedRequest,
    Reply,
    Turn,
    content_text,
    finish,
    rate_limited,
    reply,
    serve_messages_api,
    tool_use,
    usage,
)

EDITOR = "str_replace_based_edit_tool"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[MessagesAPI]:
    with serve_messages_api() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield server


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    repo = tmp_path / "wt"
    repo.mkdir()
    (repo / "app.py").write_text("def greet():\n    return 'hi'\n")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    return repo


def definition(tmp_path: Path, *, tools: str | None = None, extra: str = "") -> str:
    path = tmp_path / "agents" / "coder.md"
    path.parent.mkdir(exist_ok=True)
    tools_line = f"tools: {tools}\n" if tools else ""
    path.write_text(
        f"---\nname: coder\ndescription: writes code\n{tools_line}model: sonnet\n{extra}---\n"
        "You are a careful coder.\n"
    )
    return str(path)


def request_for(worktree: Path, source: str, **changes: Any) -> SpecialistRequest:
    base = SpecialistRequest(
        execution_id="exec-1",
        task_id="t1",
        task_title="Make greet shout",
        task_prompt="greet() must return 'HI'",
        specialist="coder",
        backend="claude",
        timeout_s=600,
        cwd=str(worktree),
        attempt=1,
        specialist_source=source,
    )
    return base.model_copy(update=changes)


async def run(
    tmp_path: Path, request: SpecialistRequest, settings: ClaudeSettings | None = None
) -> SpecialistResult:
    acts = ClaudeSpecialistActivities(tmp_path / "artifacts", settings)
    result: SpecialistResult = await ActivityEnvironment().run(acts.run, request)
    return result


def transcript(result: SpecialistResult) -> list[dict[str, Any]]:
    lines = Path(result.log_path).read_text().splitlines()
    return [json.loads(line) for line in lines]


async def test_a_task_done_through_the_editor_and_bash(
    api: MessagesAPI, tmp_path: Path, worktree: Path
) -> None:
    def after_edit(req: RecordedRequest) -> Reply:
        (result,) = req.tool_results()
        assert not result.get("is_error"), result
        return reply(tool_use("bash", {"command": "python3 -c 'import app; print(app.greet())'"}))

    def after_bash(req: RecordedRequest) -> Reply:
        assert "HI" in content_text(req.tool_results()[0]["content"])
        return reply(
            finish("greet shouts now", files_changed=["app.py"], notes_for_reviewer="tiny"),
            usage=usage(1000, 200, cache_read_input_tokens=5000),
        )

    api.script(
        reply(tool_use(EDITOR, {"command": "view", "path": "app.py"})),
        reply(
            "Changing it.",
            tool_use(
                EDITOR,
                {"command": "str_replace", "path": "app.py", "old_str": "'hi'", "new_str": "'HI'"},
            ),
        ),
        after_edit,
        after_bash,
    )
    result = await run(tmp_path, request_for(worktree, definition(tmp_path)))

    assert result.ok, result
    assert result.summary == "greet shouts now"
    assert (worktree / "app.py").read_text() == "def greet():\n    return 'HI'\n"
    assert result.agent is not None
    assert result.agent.stop_reason == "finish" and result.agent.turns == 4
    assert result.agent.model == "claude-sonnet-4-6"
    assert result.agent.finish is not None and result.agent.finish.files_changed == ["app.py"]
    # Usage is summed over the four calls and priced from the table.
    assert result.agent.usage.input_tokens == 100 * 3 + 1000
    assert result.agent.usage.cache_read_input_tokens == 5000
    assert result.cost_usd is not None and result.cost_usd > 0
    # The request carried the brief, the tools and at most four cache breakpoints.
    first = api.requests[0]
    assert "You are a careful coder." in first.system_text
    assert "Make greet shout" in first.system_text and "app.py" in first.system_text
    names = [t["name"] for t in first.body["tools"]]
    assert names == [EDITOR, "bash", "search", "finish"]  # no `tools:` key: every tool
    assert first.stream
    # The transcript has every response and every tool result, and no key.
    kinds = [r["kind"] for r in transcript(result)]
    assert kinds.count("response") == 4 and kinds.count("tool_results") == 4
    assert api.api_key not in Path(result.log_path).read_text()


async def test_end_turn_without_a_tool_call_is_done_with_the_last_text(
    api: MessagesAPI, tmp_path: Path, worktree: Path
) -> None:
    api.script(reply("Nothing to change: greet is fine as it is."))
    result = await run(tmp_path, request_for(worktree, definition(tmp_path)))
    assert result.ok
    assert result.agent is not None and result.agent.stop_reason == "end_turn"
    assert result.summary == "Nothing to change: greet is fine as it is."


async def test_path_escapes_are_refused_and_recorded(
    api: MessagesAPI, tmp_path: Path, worktree: Path
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("top secret")
    (worktree / "link").symlink_to(outside)
    attempts = [
        {"command": "view", "path": "../secret.txt"},
        {"command": "view", "path": str(outside)},
        {"command": "view", "path": "link"},
        {"command": "create", "path": "../evil.txt", "file_text": "x"},
    ]

    def check(req: RecordedRequest) -> Reply:
        results = req.tool_results()
        assert len(results) == len(attempts)
        for result in results:
            assert result.get("is_error") is True, result
            assert "top secret" not in content_text(result["content"])
        return reply(finish("gave up on the outside file"))

    api.script(reply(*(tool_use(EDITOR, a) for a in attempts)), check)
    result = await run(tmp_path, request_for(worktree, definition(tmp_path)))
    assert result.ok
    assert not (tmp_path / "evil.txt").exists()
    records = transcript(result)
    first_results = next(r for r in records if r["kind"] == "tool_results")
    assert len(first_results["content"]) == 4
    assert all(b.get("is_error") for b in first_results["content"])


async def test_a_reviewer_without_write_tools_is_refused_a_write(
    api: MessagesAPI, tmp_path: Path, worktree: Path
) -> None:
    def check(req: RecordedRequest) -> Reply:
        (result,) = req.tool_results()
        assert result.get("is_error") is True
        return reply(finish("looks fine", verdict="approve"))

    api.script(
        reply(tool_use(EDITOR, {"command": "create", "path": "new.py", "file_text": "x = 1\n"})),
        check,
    )
    source = definition(tmp_path, tools="Read, Grep, Glob")
    result = await run(tmp_path, request_for(worktree, source, role="review"))
    assert result.ok  # approved
    assert not (worktree / "new.py").exists()
    names = {t["name"] for t in api.requests[0].body["tools"]}
    assert "bash" not in names and "finish" in names


async def test_a_review_requesting_changes_is_not_ok_and_carries_the_findings(
    api: MessagesAPI, tmp_path: Path, worktree: Path
) -> None:
    api.script(
        reply(
            finish(
                "one problem",
                verdict="changes_requested",
                findings=["app.py:2: return 'HI', the task asks for it"],
            )
        )
    )
    source = definition(tmp_path, tools="Read, Grep, Glob")
    result = await run(tmp_path, request_for(worktree, source, role="review"))
    assert not result.ok
    assert "app.py:2: return 'HI'" in result.output_tail


async def test_malformed_tool_calls_get_error_results_not_a_crash(
    api: MessagesAPI, tmp_path: Path, worktree: Path
) -> None:
    def check(req: RecordedRequest) -> Reply:
        results = req.tool_results()
        assert [r.get("is_error") for r in results] == [True, True, True]
        assert "not available" in content_text(results[0]["content"])
        assert "finish: invalid input" in content_text(results[2]["content"])
        return reply(finish("recovered"))

    api.script(
        reply(
            tool_use("web_search", {"q": "x"}),
            tool_use(EDITOR, {"command": "explode"}),
            tool_use("finish", {"status": "maybe"}),
        ),
        check,
    )
    result = await run(tmp_path, request_for(worktree, definition(tmp_path)))
    assert result.ok and result.summary == "recovered"


async def test_the_same_call_with_the_same_result_three_times_is_stuck(
    api: MessagesAPI, tmp_path: Path, worktree: Path
) -> None:
    call = {"command": "view", "path": "app.py"}
    api.script(*(reply(tool_use(EDITOR, call)) for _ in range(3)))
    result = await run(tmp_path, request_for(worktree, definition(tmp_path)))
    assert not result.ok
    assert result.agent is not None and result.agent.stop_reason == "stuck"
    assert result.summary.startswith("stuck:")
    assert len(api.requests) == 3


async def test_max_turns_ends_the_attempt_as_failed(
    api: MessagesAPI, tmp_path: Path, worktree: Path
) -> None:
    for n in range(3):
        api.script(reply(tool_use("bash", {"command": f"echo {n}"})))
    result = await run(
        tmp_path, request_for(worktree, definition(tmp_path, extra="max_turns: 3\n"))
    )
    assert not result.ok
    assert result.agent is not None and result.agent.stop_reason == "max_turns"
    assert "3 turns" in result.summary
    assert len(api.requests) == 3


async def test_an_attempt_stops_at_its_budget(
    api: MessagesAPI, tmp_path: Path, worktree: Path
) -> None:
    # Each call costs 1M input tokens at $3 per million: $3.
    for n in range(5):
        api.script(reply(tool_use("bash", {"command": f"echo {n}"}), usage=usage(1_000_000, 10)))
    result = await run(tmp_path, request_for(worktree, definition(tmp_path), max_cost_usd=5.0))
    assert not result.ok
    assert result.agent is not None and result.agent.stop_reason == "budget"
    assert "budget reached" in result.summary
    assert len(api.requests) == 2


async def test_bash_does_not_see_the_workers_secrets(
    api: MessagesAPI, tmp_path: Path, worktree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_should_not_leak")
    monkeypatch.setenv("MY_DB_PASSWORD", "db-secret-value")

    def check(req: RecordedRequest) -> Reply:
        seen = content_text(req.tool_results()[0]["content"])
        assert "ghp_should_not_leak" not in seen and "db-secret-value" not in seen
        assert api.api_key not in seen
        assert "PATH=" in seen
        return reply(finish("checked"))

    api.script(reply(tool_use("bash", {"command": "env"})), check)
    settings = ClaudeSettings(secret_env=["MY_DB_PASSWORD"])
    result = await run(tmp_path, request_for(worktree, definition(tmp_path)), settings)
    assert result.ok


@pytest.mark.parametrize(
    ("fault", "retryable", "words"),
    [
        (Fault(401), False, "ANTHROPIC_API_KEY"),
        (Fault(403), False, "ANTHROPIC_API_KEY"),
        (Fault(404), False, "model"),
        (Fault(413), False, "too large"),
        (Fault(400, "messages: bad"), False, "messages: bad"),
        (rate_limited(7), True, "429"),
        (Fault(529), True, "overloaded_error"),
        (Fault(500), True, "500"),
        (Fault(529, mid_stream=True), True, "overloaded_error"),
        (Fault(0), True, "cannot reach"),
        (Fault(0, mid_stream=True), True, "cannot reach"),
    ],
)
async def test_api_errors_are_classified_for_temporal(
    api: MessagesAPI,
    tmp_path: Path,
    worktree: Path,
    fault: Fault,
    retryable: bool,
    words: str,
) -> None:
    api.script(Turn(reply(finish("never reached")), errors=[fault]))
    with pytest.raises(ApplicationError) as caught:
        await run(tmp_path, request_for(worktree, definition(tmp_path)))
    err = caught.value
    assert err.non_retryable is (not retryable), err
    assert words in str(err)
    assert "task t1" in str(err)
    if fault.retry_after:
        assert err.next_retry_delay == timedelta(seconds=fault.retry_after)


async def test_a_missing_key_is_a_clear_non_retryable_error(
    tmp_path: Path, worktree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ApplicationError, match="ANTHROPIC_API_KEY is not set") as caught:
        await run(tmp_path, request_for(worktree, definition(tmp_path)))
    assert caught.value.non_retryable


async def test_a_retried_activity_resumes_from_its_transcript(
    api: MessagesAPI, tmp_path: Path, worktree: Path
) -> None:
    """Attempt 1 of the activity dies at turn 3 (the API is overloaded); attempt 2 picks the
    conversation up at turn 3 instead of paying for turns 1 and 2 again."""
    api.script(
        reply(tool_use("bash", {"command": "echo one > one.txt"})),
        reply(tool_use("bash", {"command": "echo two > two.txt"})),
        Turn(reply(finish("all done")), errors=[529]),
    )
    acts = ClaudeSpecialistActivities(tmp_path / "artifacts")
    request = request_for(worktree, definition(tmp_path))
    with pytest.raises(ApplicationError):
        await ActivityEnvironment().run(acts.run, request)
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, attempt=2)
    result: SpecialistResult = await retry.run(acts.run, request)
    assert result.ok and result.summary == "all done"
    assert result.agent is not None and result.agent.resumed_from_turn == 2
    # Turns 1 and 2 once each, turn 3 twice (the 529, then the reply).
    assert [r.turn for r in api.requests] == [0, 1, 2, 2]
    assert result.agent.turns == 3
    assert result.agent.usage.input_tokens == 300  # the three answered calls, none twice
    kinds = [r["kind"] for r in transcript(result)]
    assert "resume" in kinds


def retried(env: ActivityEnvironment) -> ActivityEnvironment:
    env.info = dataclasses.replace(env.info, attempt=2)
    return env


async def test_a_crash_while_tools_ran_does_not_run_them_twice(
    api: MessagesAPI, tmp_path: Path, worktree: Path
) -> None:
    """The worker died after the first of two tools of a turn had finished: on resume the
    first one's result is reused, the second is reported as interrupted, nothing reruns."""
    acts = ClaudeSpecialistActivities(tmp_path / "artifacts")
    request = request_for(worktree, definition(tmp_path))
    first = {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"command": "x"}}
    second = {"type": "tool_use", "id": "toolu_2", "name": "bash", "input": {"command": "y"}}
    log = acts.transcript_path(request)
    log.parent.mkdir(parents=True)
    records = [
        {"kind": "start", "system": "the old prompt"},
        {
            "kind": "response",
            "turn": 1,
            "content": [first, second],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "output_tokens": 5},
        },
        {"kind": "tool_done", "turn": 1, "tool_use_id": "toolu_1", "content": "one done"},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))

    def check(req: RecordedRequest) -> Reply:
        done, interrupted = req.tool_results()
        assert content_text(done["content"]) == "one done" and not done.get("is_error")
        assert interrupted["is_error"] is True
        assert "restarted while this tool call ran" in content_text(interrupted["content"])
        assert req.system_text == "the old prompt"  # the same prompt: the cache still hits
        return reply(finish("checked and done"))

    api.script(reply("turn 1 was answered before the crash"), check)  # turns count from 0
    result: SpecialistResult = await retried(ActivityEnvironment()).run(acts.run, request)
    assert result.ok and result.summary == "checked and done"
    assert result.agent is not None and result.agent.usage.input_tokens == 10 + 100
    assert len(api.requests) == 1


async def test_an_attempt_that_had_ended_returns_its_outcome_without_calling_the_model(
    api: MessagesAPI, tmp_path: Path, worktree: Path
) -> None:
    acts = ClaudeSpecialistActivities(tmp_path / "artifacts")
    request = request_for(worktree, definition(tmp_path))
    log = acts.transcript_path(request)
    log.parent.mkdir(parents=True)
    finish_input = {"status": "done", "summary": "all done"}
    records = [
        {"kind": "start", "system": "s"},
        {
            "kind": "response",
            "turn": 1,
            "stop_reason": "tool_use",
            "content": [{"type": "tool_use", "id": "t", "name": "finish", "input": finish_input}],
            "usage": {"input_tokens": 7, "output_tokens": 3},
        },
        {"kind": "tool_results", "turn": 1, "content": [], "calls": []},
        {
            "kind": "end",
            "stop_reason": "finish",
            "summary": "all done",
            "detail": "",
            "finish": finish_input,
            "turn": 1,
        },
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    result: SpecialistResult = await retried(ActivityEnvironment()).run(acts.run, request)
    assert result.ok and result.summary == "all done"
    assert api.requests == []


async def test_nothing_runs_after_finish_in_the_same_turn(
    api: MessagesAPI, tmp_path: Path, worktree: Path
) -> None:
    api.script(reply(finish("done"), tool_use("bash", {"command": "echo late > late.txt"})))
    result = await run(tmp_path, request_for(worktree, definition(tmp_path)))
    assert result.ok
    assert not (worktree / "late.txt").exists()


async def test_a_review_without_a_verdict_does_not_approve(
    api: MessagesAPI, tmp_path: Path, worktree: Path
) -> None:
    api.script(reply("Three bugs, please fix them."))
    source = definition(tmp_path, tools="Read, Grep, Glob")
    result = await run(tmp_path, request_for(worktree, source, role="review"))
    assert not result.ok


async def test_a_cost_budget_on_a_model_without_a_price_is_refused(
    api: MessagesAPI, tmp_path: Path, worktree: Path
) -> None:
    settings = ClaudeSettings(models={"sonnet": "claude-unpriced-9"})
    with pytest.raises(ApplicationError, match="has no price") as caught:
        await run(tmp_path, request_for(worktree, definition(tmp_path), max_cost_usd=1.0), settings)
    assert caught.value.non_retryable
    assert api.requests == []


async def test_a_failed_attempt_says_what_it_spent(
    api: MessagesAPI, tmp_path: Path, worktree: Path
) -> None:
    api.script(
        reply(tool_use("bash", {"command": "true"}), usage=usage(1_000_000, 0)),
        Turn(reply(finish("never")), errors=[401]),
    )
    with pytest.raises(ApplicationError) as caught:
        await run(tmp_path, request_for(worktree, definition(tmp_path)))
    (spent,) = caught.value.details
    assert spent["tokens_in"] == 1_000_000 and spent["cost_usd"] == pytest.approx(3.0)
