"""The local Messages API server against the real `anthropic` client: wire format, validation,
errors, retries and scripting behave as the agent loop's tests need them to."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from itertools import groupby
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import MessageParam

from tests.anthropic_server import (
    Fault,
    MessagesAPI,
    RecordedRequest,
    Reply,
    Turn,
    content_text,
    disconnect,
    finish,
    messages_api_fixture,  # noqa: F401
    overloaded,
    rate_limited,
    reply,
    serve_messages_api,
    text,
    tool_use,
    usage,
)

MODEL = "claude-sonnet-4-6"
HELLO: list[MessageParam] = [{"role": "user", "content": "Hello"}]


def client(api: MessagesAPI, **options: Any) -> anthropic.AsyncAnthropic:
    options.setdefault("max_retries", 0)
    return anthropic.AsyncAnthropic(base_url=api.base_url, api_key=api.api_key, **options)


async def post(api: MessagesAPI, body: object, **headers: str) -> httpx2.Response:
    """A raw request, for what the SDK would refuse to send."""
    sent = {"x-api-key": api.api_key, "anthropic-version": "2023-06-01", **headers}
    async with httpx2.AsyncClient() as raw:
        return await raw.post(f"{api.base_url}/v1/messages", json=body, headers=sent)


def error_of(response: httpx2.Response) -> tuple[int, str, str]:
    body = response.json()
    assert body["type"] == "error" and body["request_id"] == response.headers["request-id"]
    return response.status_code, body["error"]["type"], body["error"]["message"]


async def test_create_returns_a_message_with_usage(messages_api: MessagesAPI) -> None:
    messages_api.script(
        reply(
            "Hi there.",
            usage=usage(12, 7, cache_creation_input_tokens=3, cache_read_input_tokens=4),
        )
    )
    message = await client(messages_api).messages.create(
        model=MODEL, max_tokens=100, messages=HELLO
    )
    assert (
        message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    )
    assert message.model == MODEL and message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", "Hi there.")]
    assert message.usage.input_tokens == 12 and message.usage.output_tokens == 7
    assert message.usage.cache_creation_input_tokens == 3
    assert message.usage.cache_read_input_tokens == 4
    assert message._request_id is not None and message._request_id.startswith("req_")


async def test_claude_codes_beta_path_and_system_messages_are_accepted(
    messages_api: MessagesAPI,
) -> None:
    """Claude Code posts to `/v1/messages?beta=true` and, with its newest models, puts
    `role: system` messages among the messages: dropped, they neither fail validation nor
    count as turns."""
    messages_api.script(reply("one"), reply("two"))
    body = {
        "model": MODEL,
        "max_tokens": 10,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "one"},
            {"role": "system", "content": "still brief"},
            {"role": "user", "content": "Again"},
        ],
    }
    sent = {"x-api-key": messages_api.api_key, "anthropic-version": "2023-06-01"}
    async with httpx2.AsyncClient() as raw:
        url = f"{messages_api.base_url}/v1/messages?beta=true"
        response = await raw.post(url, json=body, headers=sent)
    assert response.status_code == 200, response.text
    assert response.json()["content"] == [{"type": "text", "text": "two"}]
    [request] = messages_api.requests
    assert request.turn == 1
    assert [m["role"] for m in request.messages] == ["user", "assistant", "user"]


async def test_stream_tool_use_round_trip_with_a_callable_turn(messages_api: MessagesAPI) -> None:
    command = {"command": "ls -la && cat README.md", "timeout": 30, "env": {"A": "1"}}
    seen: list[RecordedRequest] = []

    def second(request: RecordedRequest) -> Reply:
        seen.append(request)
        [result] = request.tool_results()
        assert result["tool_use_id"] == "toolu_ls" and content_text(result["content"]) == "a.txt"
        return reply(finish("Listed.", files_changed=[]))

    messages_api.script(
        reply("Let me look.", tool_use("bash", command, id="toolu_ls")), second, key="task-7"
    )
    api = client(messages_api)
    system = "You are the implementer. Task: task-7."
    tools: Any = [{"type": "bash_20250124", "name": "bash"}]
    async with api.messages.stream(
        model=MODEL, max_tokens=100, system=system, tools=tools, messages=HELLO
    ) as stream:
        first = await stream.get_final_message()
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["text", "tool_use"]
    assert first.content[0].type == "text" and first.content[0].text == "Let me look."
    call = first.content[1]
    assert call.type == "tool_use" and call.id == "toolu_ls" and call.name == "bash"
    assert call.input == command

    history: list[MessageParam] = [
        *HELLO,
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_ls", "content": "a.txt"}],
        },
    ]
    system_blocks: Any = [{"type": "text", "text": system}]
    async with api.messages.stream(
        model=MODEL, max_tokens=100, system=system_blocks, tools=tools, messages=history
    ) as stream:
        done = await stream.get_final_message()
    assert done.content[0].type == "tool_use" and done.content[0].name == "finish"
    assert done.content[0].input == {"status": "done", "summary": "Listed.", "files_changed": []}
    assert [r.turn for r in messages_api.requests_for("task-7")] == [0, 1]
    assert len(seen) == 1 and seen[0].stream


async def test_stream_sends_the_real_event_sequence(messages_api: MessagesAPI) -> None:
    messages_api.script(reply("Some words to split.", tool_use("edit", {"path": "a.py", "x": 1})))
    body = {"model": MODEL, "max_tokens": 10, "messages": HELLO, "stream": True}
    response = await post(messages_api, body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [
        (lines[0].removeprefix("event: "), json.loads(lines[1].removeprefix("data: ")))
        for lines in (chunk.split("\n") for chunk in response.text.strip().split("\n\n"))
    ]
    assert all(name == data["type"] for name, data in events)
    kinds = [name for name, _ in events]
    block = ["content_block_start", "content_block_delta", "content_block_stop"]
    assert kinds[:2] == ["message_start", "ping"]
    assert kinds[-3:] == ["ping", "message_delta", "message_stop"]
    assert [kind for kind, _ in groupby(kinds[2:-3])] == block * 2
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == 100
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-2][1]["usage"] == {"output_tokens": 50}

    # The SDK skips the pings and joins the pieces of the tool input.
    raw = await client(messages_api).messages.create(
        model=MODEL, max_tokens=100, messages=HELLO, stream=True
    )
    deltas = [e.delta for e in [event async for event in raw] if e.type == "content_block_delta"]
    pieces = [d.partial_json for d in deltas if d.type == "input_json_delta"]
    assert len([p for p in pieces if p]) >= 2
    assert json.loads("".join(pieces)) == {"path": "a.py", "x": 1}


async def test_unanswered_tool_use_is_a_400_with_the_real_message(
    messages_api: MessagesAPI,
) -> None:
    history: list[MessageParam] = [
        *HELLO,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_x", "name": "bash", "input": {}}],
        },
        {"role": "user", "content": "go on"},
    ]
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client(messages_api).messages.create(model=MODEL, max_tokens=10, messages=history)
    message = (
        "messages.2: `tool_use` ids were found without `tool_result` blocks immediately after: "
        "toolu_x. Each `tool_use` block must have a corresponding `tool_result` block in the "
        "next message."
    )
    assert caught.value.api_message == message and caught.value.type == "invalid_request_error"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert messages_api.requests[0].status == 400 and messages_api.requests[0].turn is None


async def test_tool_result_without_its_tool_use_is_a_400(messages_api: MessagesAPI) -> None:
    history: list[MessageParam] = [
        *HELLO,
        {"role": "assistant", "content": "Sure."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "here"},
                {"type": "tool_result", "tool_use_id": "toolu_y", "content": "out"},
            ],
        },
    ]
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client(messages_api).messages.create(model=MODEL, max_tokens=10, messages=history)
    assert caught.value.api_message == (
        "messages.2.content.1: unexpected `tool_use_id` found in `tool_result` blocks: toolu_y. "
        "Each `tool_result` block must have a corresponding `tool_use` block in the previous "
        "message."
    )


async def test_at_most_four_cache_control_blocks(messages_api: MessagesAPI) -> None:
    messages_api.script(reply("ok"))
    mark: Any = {"type": "ephemeral"}
    tools: Any = [
        {"name": f"t{i}", "input_schema": {"type": "object"}, "cache_control": mark}
        for i in range(2)
    ]
    system: Any = [{"type": "text", "text": "s", "cache_control": mark}]
    five: list[MessageParam] = [
        {"role": "user", "content": [{"type": "text", "text": t, "cache_control": mark}]}
        for t in ("a", "b")
    ]
    api = client(messages_api)
    with pytest.raises(anthropic.BadRequestError) as caught:
        await api.messages.create(
            model=MODEL, max_tokens=10, tools=tools, system=system, messages=five
        )
    assert caught.value.api_message == (
        "A maximum of 4 blocks with cache_control may be provided. Found 5."
    )
    four = await api.messages.create(
        model=MODEL, max_tokens=10, tools=tools, system=system, messages=five[:1]
    )
    assert four.content[0].type == "text"


async def test_request_shape_is_validated_on_the_wire(messages_api: MessagesAPI) -> None:
    body = {"model": MODEL, "max_tokens": 5, "messages": HELLO}
    for name in ("model", "max_tokens", "messages"):
        partial = {k: v for k, v in body.items() if k != name}
        assert error_of(await post(messages_api, partial)) == (
            400,
            "invalid_request_error",
            f"{name}: Field required",
        )
    starts_with_assistant = {**body, "messages": [{"role": "assistant", "content": "hi"}]}
    assert error_of(await post(messages_api, starts_with_assistant))[2] == (
        'messages: first message must use the "user" role'
    )
    same = {"name": "finish", "input_schema": {"type": "object"}}
    assert error_of(await post(messages_api, {**body, "tools": [same, same]}))[2] == (
        "tools: Tool names must be unique."
    )
    assert error_of(await post(messages_api, body, **{"anthropic-version": ""})) == (
        400,
        "invalid_request_error",
        "anthropic-version: header is required",
    )
    assert error_of(await post(messages_api, body, **{"x-api-key": ""})) == (
        401,
        "authentication_error",
        "x-api-key header is required",
    )
    async with httpx2.AsyncClient() as raw:
        missing = await raw.get(f"{messages_api.base_url}/v1/models")
    assert error_of(missing)[:2] == (404, "not_found_error")


async def test_a_wrong_key_is_a_401_and_keys_are_never_recorded(messages_api: MessagesAPI) -> None:
    messages_api.script(reply("ok"))
    wrong = anthropic.AsyncAnthropic(
        base_url=messages_api.base_url, api_key="sk-wrong", max_retries=0
    )
    with pytest.raises(anthropic.AuthenticationError) as caught:
        await wrong.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert caught.value.api_message == "invalid x-api-key"
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
        "request_id": caught.value.request_id,
    }
    await client(messages_api).messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    recorded = json.dumps([r.__dict__ for r in messages_api.requests])
    assert "sk-wrong" not in recorded and messages_api.api_key not in recorded
    assert messages_api.requests[1].headers["authorization"] == "<redacted>"


async def test_rate_limit_then_reply_for_the_same_turn(messages_api: MessagesAPI) -> None:
    messages_api.script(Turn(reply("finally"), errors=[rate_limited(retry_after=7), 429]))
    api = client(messages_api)
    with pytest.raises(anthropic.RateLimitError) as caught:
        await api.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.type == "rate_limit_error"
    assert caught.value.response.headers["x-should-retry"] == "true"
    with pytest.raises(anthropic.RateLimitError):
        await api.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    message = await api.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert message.content[0].type == "text" and message.content[0].text == "finally"
    assert [r.status for r in messages_api.requests] == [429, 429, 200]
    assert len(messages_api.replies_for()) == 1


@pytest.mark.parametrize(
    ("status", "exception", "kind"),
    [
        (529, anthropic.OverloadedError, "overloaded_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (413, anthropic.ContentTooLargeError, "request_too_large"),
    ],
)
async def test_scripted_errors_raise_the_sdk_classes(
    messages_api: MessagesAPI, status: int, exception: type[anthropic.APIStatusError], kind: str
) -> None:
    messages_api.script(Turn(reply("ok"), errors=[status]))
    with pytest.raises(exception) as caught:
        await client(messages_api).messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert type(caught.value) is exception
    assert caught.value.status_code == status and caught.value.type == kind


async def test_request_too_large_by_size(messages_api: MessagesAPI) -> None:
    messages_api.max_request_bytes = 1000
    big: list[MessageParam] = [{"role": "user", "content": "x" * 2000}]
    with pytest.raises(anthropic.ContentTooLargeError):
        await client(messages_api).messages.create(model=MODEL, max_tokens=10, messages=big)


async def test_error_event_mid_stream_then_the_retry_streams(messages_api: MessagesAPI) -> None:
    messages_api.script(Turn(reply("whole answer"), errors=[overloaded(mid_stream=True)]))
    api = client(messages_api)
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with api.messages.stream(model=MODEL, max_tokens=10, messages=HELLO) as stream:
            await stream.get_final_message()
    # After a 200 the SDK cannot pick the class by status: the error type tells.
    assert caught.value.type == "overloaded_error" and caught.value.status_code == 200
    async with api.messages.stream(model=MODEL, max_tokens=10, messages=HELLO) as stream:
        assert (await stream.get_final_text()) == "whole answer"
    assert [r.status for r in messages_api.requests] == [529, 200]


async def test_dropped_connections(messages_api: MessagesAPI) -> None:
    messages_api.script(
        Turn(reply("ok"), errors=[disconnect(), disconnect(mid_stream=True), Fault(500, "boom")])
    )
    api = client(messages_api)
    with pytest.raises(anthropic.APIConnectionError):
        await api.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    # Mid-stream, older SDKs let the transport's own error through and newer ones (2.17) wrap
    # it as APIConnectionError: a real client sees the same, and the agent classifies both.
    with pytest.raises((httpx2.RemoteProtocolError, anthropic.APIConnectionError)):
        async with api.messages.stream(model=MODEL, max_tokens=10, messages=HELLO) as stream:
            await stream.get_final_message()
    with pytest.raises(anthropic.InternalServerError, match="boom"):
        await api.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert [r.status for r in messages_api.requests] == [0, 0, 500]


async def test_sdk_retries_honour_retry_after(messages_api: MessagesAPI) -> None:
    messages_api.script(Turn(reply("ok"), errors=[rate_limited(0.05), rate_limited(0.05)]))
    started = time.monotonic()
    message = await client(messages_api, max_retries=2).messages.create(
        model=MODEL, max_tokens=10, messages=HELLO
    )
    # Without retry-after the SDK would back off 0.5 s, then 1 s (less jitter).
    assert time.monotonic() - started < 1.0
    assert message.content[0].type == "text"
    retries = [r.headers["x-stainless-retry-count"] for r in messages_api.requests]
    assert retries == ["0", "1", "2"]


async def test_turns_are_chosen_by_assistant_message_count(messages_api: MessagesAPI) -> None:
    messages_api.script(reply("zero"), reply("one"), reply("two"))
    api = client(messages_api)

    async def answer(assistant_turns: int) -> str:
        history: list[MessageParam] = [*HELLO]
        for i in range(assistant_turns):
            history += [{"role": "assistant", "content": f"a{i}"}, {"role": "user", "content": "u"}]
        message = await api.messages.create(model=MODEL, max_tokens=10, messages=history)
        assert message.content[0].type == "text"
        return message.content[0].text

    # A client resuming from a transcript gets the next turn; a repeat gets the same turn.
    assert [await answer(n) for n in (2, 0, 0, 1)] == ["two", "zero", "zero", "one"]
    assert [r.turn for r in messages_api.requests] == [2, 0, 0, 1]
    with pytest.raises(anthropic.InternalServerError) as caught:
        await answer(3)
    problem = "no scripted turn 3 for conversation default (it has 3)"
    assert caught.value.api_message == problem
    assert messages_api.failures == [problem]
    messages_api.failures.clear()


async def test_conversations_are_told_apart_by_system_prompt(messages_api: MessagesAPI) -> None:
    messages_api.script(reply("for A"), key="task-a")
    messages_api.script(reply("for B"), key="task-b")
    api = client(messages_api)

    async def ask(system: Any) -> str:
        message = await api.messages.create(
            model=MODEL, max_tokens=10, system=system, messages=HELLO
        )
        assert message.content[0].type == "text"
        return message.content[0].text

    assert await ask("Brief for task-b.") == "for B"
    assert await ask([{"type": "text", "text": "x"}, {"type": "text", "text": "task-a"}]) == "for A"
    with pytest.raises(anthropic.InternalServerError, match="no scripted conversation"):
        await ask("task-c")
    assert [r.conversation for r in messages_api.requests] == ["task-b", "task-a", None]
    assert len(messages_api.failures) == 1
    messages_api.failures.clear()


async def test_a_failing_callable_is_a_500_and_a_recorded_failure() -> None:
    def refuse(request: RecordedRequest) -> Reply:
        raise AssertionError("tool_result was not sent")

    with (
        pytest.raises(AssertionError, match="tool_result was not sent"),
        serve_messages_api() as api,
    ):
        api.script(refuse)
        with pytest.raises(anthropic.InternalServerError, match="tool_result was not sent"):
            await client(api).messages.create(model=MODEL, max_tokens=10, messages=HELLO)


async def test_hooks_hold_a_turn_and_delays_time_out_clients(messages_api: MessagesAPI) -> None:
    reached, release = threading.Event(), threading.Event()

    def hold(request: RecordedRequest) -> None:
        reached.set()
        release.wait(10)

    messages_api.script(Turn(reply("held"), before=hold), Turn(reply("late"), delay=2))
    api = client(messages_api)
    pending = asyncio.create_task(api.messages.create(model=MODEL, max_tokens=10, messages=HELLO))
    assert await asyncio.to_thread(reached.wait, 10)
    assert messages_api.requests[0].status is None and not pending.done()
    release.set()
    assert (await pending).content[0].type == "text"

    history: list[MessageParam] = [
        *HELLO,
        {"role": "assistant", "content": "held"},
        {"role": "user", "content": "more"},
    ]
    with pytest.raises(anthropic.APITimeoutError):
        await api.messages.create(model=MODEL, max_tokens=10, messages=history, timeout=0.3)


def test_a_worker_in_another_process_reaches_it(messages_api: MessagesAPI) -> None:
    messages_api.script(reply(text("from the server")))
    program = (
        "import anthropic\n"
        "m = anthropic.Anthropic(max_retries=0).messages.create(\n"
        f"    model={MODEL!r}, max_tokens=10, messages=[{{'role': 'user', 'content': 'hi'}}])\n"
        "print(m.content[0].text)\n"
    )
    env = {**os.environ, **messages_api.env()}
    done = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "from the server"
    [request] = messages_api.requests
    assert request.body["messages"] == [{"role": "user", "content": "hi"}]
    assert request.conversation == "default" and request.turn == 0 and request.delivered
    assert request.response is not None and request.response["content"][0]["text"] == (
        "from the server"
    )
