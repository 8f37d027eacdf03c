"""A local Messages API server playing scripted turns, for tests with the real `anthropic` client.

It speaks the wire format of `POST /v1/messages` (also `?beta=true`, as Claude Code calls it) as
the real API does: credentials and `anthropic-version` required, request validation with the
real error texts (tool_use / tool_result pairing, at most 4 `cache_control` blocks, ...), JSON
or Server-Sent Events replies, error bodies with the real types, `request-id` and
`retry-after` headers; `role: system` messages among the messages (Claude Code's newest
models send them) are dropped. Tests point
`anthropic.AsyncAnthropic(base_url=api.base_url, api_key=api.api_key)` at it, or a worker in
another process through `api.env()` (ANTHROPIC_BASE_URL / ANTHROPIC_API_KEY).

Conversations are told apart by a key, a substring of the system prompt (e.g. the task id).
A request's turn is the number of assistant messages it already carries, so a retried request
gets the same turn again and a client resuming from a transcript gets the next one. Each turn
serves its scripted errors first, one per request, then its reply.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest

Block = dict[str, Any]
Json = dict[str, Any]

ERRORS = {  # status: (error type, default message), as the real API sends them
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed the rate limit for your organization."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
REDACTED = "<redacted>"


def _id(prefix: str) -> str:
    return f"{prefix}_01{uuid.uuid4().hex[:22]}"


# --- what a turn replies -------------------------------------------------------------------


def text(value: str) -> Block:
    return {"type": "text", "text": value}


def tool_use(name: str, input: Mapping[str, Any] | None = None, *, id: str | None = None) -> Block:
    return {"type": "tool_use", "id": id or _id("toolu"), "name": name, "input": dict(input or {})}


def finish(summary: str = "Done.", *, status: str = "done", **fields: Any) -> Block:
    """A call of our own `finish` tool (any further fields go into its input as they are)."""
    return tool_use("finish", {"status": status, "summary": summary, **fields})


def usage(
    input_tokens: int = 100,
    output_tokens: int = 50,
    *,
    cache_creation_input_tokens: int = 0,
    cache_read_input_tokens: int = 0,
) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": cache_creation_input_tokens,
        "cache_read_input_tokens": cache_read_input_tokens,
    }


@dataclass(frozen=True)
class Reply:
    """An assistant message; stop_reason defaults to tool_use when it calls a tool."""

    content: Sequence[Block]
    stop_reason: str | None = None
    usage: Mapping[str, int] = field(default_factory=usage)
    stop_sequence: str | None = None

    def message(self, model: str) -> Json:
        calls_tool = any(block.get("type") == "tool_use" for block in self.content)
        return {
            "id": _id("msg"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [dict(block) for block in self.content],
            "stop_reason": self.stop_reason or ("tool_use" if calls_tool else "end_turn"),
            "stop_sequence": self.stop_sequence,
            "usage": dict(self.usage),
        }


def reply(
    *content: Block | str,
    stop_reason: str | None = None,
    usage: Mapping[str, int] | None = None,
) -> Reply:
    """`reply("Let me look.", tool_use("bash", {"command": "ls"}))`; strings become text blocks."""
    made = Reply([text(item) if isinstance(item, str) else item for item in content], stop_reason)
    return made if usage is None else replace(made, usage=dict(usage))


@dataclass(frozen=True)
class Fault:
    """An error served instead of a reply (`Fault(500, "boom")`). status 0 drops the connection;
    mid_stream sends the error (or the drop) after a stream has started, as the real API does
    (for a non-streaming request that is the plain HTTP error)."""

    status: int
    message: str = ""
    retry_after: float | None = None
    mid_stream: bool = False
    delay: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self, request_id: str) -> Json:
        default = ("api_error" if self.status >= 500 else "invalid_request_error", "Error")
        kind, message = ERRORS.get(self.status, default)
        error = {"type": kind, "message": self.message or message}
        return {"type": "error", "error": error, "request_id": request_id}


def rate_limited(retry_after: float = 0) -> Fault:
    return Fault(429, retry_after=retry_after)


def overloaded(*, mid_stream: bool = False) -> Fault:
    return Fault(529, mid_stream=mid_stream)


def disconnect(*, mid_stream: bool = False) -> Fault:
    return Fault(0, mid_stream=mid_stream)


@dataclass
class RecordedRequest:
    """One request as received (credential values redacted) and what was served."""

    headers: dict[str, str]
    body: Json = field(default_factory=dict)
    conversation: str | None = None
    turn: int | None = None
    stream: bool = False
    # The HTTP status, or a mid-stream error's; 0: connection dropped; None: in flight.
    status: int | None = None
    response: Json | None = None  # the Message (also when streamed) or the error body
    delivered: bool = False  # the whole response was written to the client

    @property
    def messages(self) -> list[Json]:
        return cast(list[Json], self.body.get("messages") or [])

    @property
    def system_text(self) -> str:
        return content_text(self.body.get("system") or "")

    def tool_results(self) -> list[Block]:
        """The tool_result blocks of the last user message."""
        users = [m for m in self.messages if m.get("role") == "user"]
        return [b for b in _blocks(users[-1]) if b.get("type") == "tool_result"] if users else []


ReplyFn = Callable[[RecordedRequest], Reply | Fault]
Hook = Callable[[RecordedRequest], None]


@dataclass(frozen=True)
class Turn:
    """errors are served first, one per request (an int is `Fault(status)`); `before` runs on
    every request of the turn before anything is served; `delay` holds back the reply."""

    reply: Reply | ReplyFn
    errors: Sequence[Fault | int] = ()
    before: Hook | None = None
    delay: float = 0.0


def content_text(content: Any) -> str:
    """The text of a string or of a list of blocks (tool_result content, system prompt)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(content_text(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


# --- validation, with the real API's messages ----------------------------------------------


def _blocks(message: Json) -> list[Block]:
    content = message.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _ids(message: Json | None, kind: str, key: str) -> list[str]:
    return [str(b.get(key)) for b in _blocks(message or {}) if b.get("type") == kind]


def _cache_controls(body: Json) -> int:
    blocks: list[Any] = list(body.get("tools") or [])
    if isinstance(body.get("system"), list):
        blocks += body["system"]
    for message in body.get("messages") or []:
        for block in _blocks(message):
            blocks.append(block)
            if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                blocks += block["content"]
    return sum(1 for b in blocks if isinstance(b, dict) and b.get("cache_control") is not None)


def validate(body: Json) -> str | None:
    """The first problem the real API reports with a 400 invalid_request_error, if any."""
    for name in ("max_tokens", "messages", "model"):
        if name not in body:
            return f"{name}: Field required"
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        return "max_tokens: Input should be a valid integer greater than or equal to 1"
    messages = body["messages"]
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return "messages: Input should be a valid list"
    if not messages:
        return "messages: at least one message is required"
    if messages[0].get("role") != "user":
        return 'messages: first message must use the "user" role'
    tools = body.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        return "tools: Input should be a valid list"
    for i, tool in enumerate(tools):
        if tool.get("type") in (None, "custom") and "input_schema" not in tool:
            return f"tools.{i}.custom.input_schema: Field required"
    names = [tool.get("name") for tool in tools]
    if len(names) != len(set(names)):
        return "tools: Tool names must be unique."
    found = _cache_controls(body)
    if found > 4:
        return f"A maximum of 4 blocks with cache_control may be provided. Found {found}."
    for i, message in enumerate(messages):
        before = messages[i - 1] if i > 0 and messages[i - 1].get("role") == "assistant" else None
        if message.get("role") == "assistant":
            after = messages[i + 1] if i + 1 < len(messages) else None
            if after is not None and after.get("role") != "user":
                after = None
            answered = set(_ids(after, "tool_result", "tool_use_id"))
            missing = [x for x in _ids(message, "tool_use", "id") if x not in answered]
            if missing:
                # Located at the message that should carry the results, as the real API does.
                return (
                    f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                    "corresponding `tool_result` block in the next message."
                )
        asked = set(_ids(before, "tool_use", "id"))
        blocks = _blocks(message)
        stray = [
            (j, str(b.get("tool_use_id")))
            for j, b in enumerate(blocks)
            if b.get("type") == "tool_result" and b.get("tool_use_id") not in asked
        ]
        if stray:
            return (
                f"messages.{i}.content.{stray[0][0]}: unexpected `tool_use_id` found in "
                f"`tool_result` blocks: {', '.join(x for _, x in stray)}. Each `tool_result` "
                "block must have a corresponding `tool_use` block in the previous message."
            )
    return None


# --- the server ----------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: MessagesAPI


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        cast(_Server, self.server).api._handle(self)

    def do_GET(self) -> None:
        self.do_POST()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the recorded requests say what happened


class MessagesAPI:
    """The scripted server; use `serve_messages_api()` or the `messages_api` fixture."""

    def __init__(self, api_key: str | None = None, *, max_request_bytes: int = 32_000_000):
        self.api_key = api_key or f"sk-ant-test-{uuid.uuid4().hex}"
        self.max_request_bytes = max_request_bytes
        self.failures: list[str] = []  # script problems: unscripted turns, raising callables
        self._scripts: dict[str | None, list[Turn]] = {}
        self._served: dict[tuple[str | None, int], int] = {}
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.api = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> MessagesAPI:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def env(self) -> dict[str, str]:
        """Environment for a worker in another process."""
        return {"ANTHROPIC_BASE_URL": self.base_url, "ANTHROPIC_API_KEY": self.api_key}

    def script(self, *turns: Turn | Reply | ReplyFn, key: str | None = None) -> None:
        """Append turns to the conversation whose system prompt contains `key` (None: the
        conversation of requests no key matches)."""
        made = [t if isinstance(t, Turn) else Turn(t) for t in turns]
        with self._lock:
            self._scripts.setdefault(key, []).extend(made)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, key: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.conversation == _name(key)]

    def replies_for(self, key: str | None = None) -> list[RecordedRequest]:
        """The requests of a conversation that were answered with a message."""
        return [r for r in self.requests_for(key) if r.status == 200]

    # --- request handling ----------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers.get("content-length") or 0))
        secret = {"x-api-key", "authorization"}
        headers = {k.lower(): REDACTED if k.lower() in secret else v for k, v in h.headers.items()}
        record = RecordedRequest(headers)
        with self._lock:
            self._requests.append(record)
        try:
            record.status, record.response, write = self._serve(h, record, raw)
        except Exception as exc:  # a bug here must fail the test, not look like a network error
            fault = Fault(500, self._failure(f"the test server failed: {exc!r}"))
            record.status, record.response, write = _error(h, fault, _id("req"))
        with suppress(OSError):  # the client may have gone (a timeout, a killed worker)
            write()
            record.delivered = record.status != 0

    def _serve(self, h: BaseHTTPRequestHandler, record: RecordedRequest, raw: bytes) -> Served:
        request_id = _id("req")

        def fail(status: int, message: str) -> Served:
            return _error(h, Fault(status, message), request_id)

        if h.command != "POST" or h.path.split("?")[0] != "/v1/messages":
            return fail(404, "Not found.")
        bearer = h.headers.get("authorization", "")
        key = h.headers.get("x-api-key") or bearer.removeprefix("Bearer ").strip()
        if not key:
            return fail(401, "x-api-key header is required")
        if key != self.api_key:
            return fail(401, "invalid x-api-key")
        if not h.headers.get("anthropic-version"):
            return fail(400, "anthropic-version: header is required")
        if len(raw) > self.max_request_bytes:
            return fail(413, "")
        try:
            body = json.loads(raw)
        except ValueError:
            return fail(400, "There was an error parsing the body.")
        if not isinstance(body, dict):
            return fail(400, "Input should be a valid dictionary")
        if isinstance(body.get("messages"), list):
            # Claude Code (its newest models) puts `role: system` messages among the messages:
            # accepted and dropped, so turns count and validation see the conversation only.
            body["messages"] = [
                m
                for m in body["messages"]
                if not (isinstance(m, dict) and m.get("role") == "system")
            ]
        record.body, record.stream = body, bool(body.get("stream"))
        problem = validate(body)
        if problem:
            return fail(400, problem)

        chosen, unknown = self._conversation(record.system_text)
        if unknown:
            return fail(500, self._failure(unknown))
        record.conversation = _name(chosen)
        record.turn = index = sum(1 for m in record.messages if m.get("role") == "assistant")
        with self._lock:
            turns = list(self._scripts[chosen])
            attempt = self._served.get((chosen, index), 0)
            self._served[(chosen, index)] = attempt + 1
        if index >= len(turns):
            problem = f"no scripted turn {index} for conversation {record.conversation}"
            return fail(500, self._failure(f"{problem} (it has {len(turns)})"))
        turn = turns[index]
        try:
            if turn.before is not None:
                turn.before(record)
            answer: Reply | Fault
            if attempt < len(turn.errors):
                planned = turn.errors[attempt]
                answer = Fault(planned) if isinstance(planned, int) else planned
            else:
                answer = turn.reply if isinstance(turn.reply, Reply) else turn.reply(record)
        except Exception as exc:
            where = f"conversation {record.conversation} turn {index}"
            detail = "".join(traceback.format_exception_only(exc)).strip()
            return fail(500, self._failure(f"script of {where} raised: {detail}"))

        time.sleep(answer.delay if isinstance(answer, Fault) else turn.delay)
        if isinstance(answer, Fault) and not (answer.mid_stream and record.stream):
            return _error(h, answer, request_id)
        if isinstance(answer, Fault):  # cut into a stream of some answer
            started = reply("Partial answer").message(str(body["model"]))
            served = None if answer.status == 0 else answer.body(request_id)
            return answer.status, served, _stream(h, started, request_id, answer)
        message = answer.message(str(body["model"]))
        if record.stream:
            return 200, message, _stream(h, message, request_id, None)
        return 200, message, _json(h, 200, message, {"request-id": request_id})

    def _conversation(self, system: str) -> tuple[str | None, str]:
        """The key of the conversation the system prompt selects, or why none is selected."""
        with self._lock:
            keys = [k for k in self._scripts if k is not None and k in system]
            if len(keys) > 1:
                return None, f"the system prompt matches several conversations: {sorted(keys)}"
            if keys or None in self._scripts:
                return (keys[0] if keys else None), ""
            known = list(self._scripts)
        return None, f"no scripted conversation matches the system prompt (keys: {known})"

    def _failure(self, problem: str) -> str:
        with self._lock:
            self.failures.append(problem)
        return problem


# --- writing responses --------------------------------------------------------------------

Write = Callable[[], None]
Served = tuple[int, Json | None, Write]  # status, what is served, how to write it


def _json(h: BaseHTTPRequestHandler, status: int, body: Json, headers: Mapping[str, str]) -> Write:
    payload = json.dumps(body).encode()

    def write() -> None:
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(payload)))
        for name, value in headers.items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(payload)

    return write


def _error(h: BaseHTTPRequestHandler, fault: Fault, request_id: str) -> Served:
    if fault.status == 0:
        return 0, None, lambda: _drop(h)
    # As the real API: retryable statuses say so (the SDK obeys x-should-retry).
    retryable = fault.status in (408, 409, 429) or fault.status >= 500
    headers = {"request-id": request_id, "x-should-retry": str(retryable).lower()}
    if fault.retry_after is not None:
        seconds = fault.retry_after
        headers["retry-after"] = str(int(seconds)) if seconds == int(seconds) else str(seconds)
    body = fault.body(request_id)
    return fault.status, body, _json(h, fault.status, body, {**headers, **fault.headers})


def _stream(
    h: BaseHTTPRequestHandler, message: Json, request_id: str, fault: Fault | None
) -> Write:
    """Server-Sent Events in the real order; a mid-stream fault cuts in after the first content
    block has started: an `error` event, or a dropped connection."""

    def write() -> None:
        h.send_response(200)
        h.send_header("content-type", "text/event-stream; charset=utf-8")
        h.send_header("cache-control", "no-cache")
        h.send_header("transfer-encoding", "chunked")
        h.send_header("request-id", request_id)
        h.end_headers()
        for event in _events(message):
            if fault is not None and event["type"] == "content_block_delta":
                if fault.status == 0:
                    return _drop(h)
                _chunk(h, fault.body(request_id))
                break
            _chunk(h, event)
        h.wfile.write(b"0\r\n\r\n")

    return write


def _chunk(h: BaseHTTPRequestHandler, event: Json) -> None:
    data = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
    h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")


def _name(key: str | None) -> str:
    return "default" if key is None else key


def _drop(h: BaseHTTPRequestHandler) -> None:
    h.close_connection = True
    with suppress(OSError):
        h.connection.shutdown(socket.SHUT_RDWR)


def _pieces(value: str, count: int = 3) -> list[str]:
    size = max(1, -(-len(value) // count))
    return [value[i : i + size] for i in range(0, len(value), size)]


def _events(message: Json) -> Iterator[Json]:
    """message_start, ping, per block start / deltas / stop, ping, message_delta, message_stop."""
    final_usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    yield {
        "type": "message_start",
        "message": {**start, "usage": {**final_usage, "output_tokens": 1}},
    }
    yield {"type": "ping"}
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":  # an empty piece first, as the real API sends
            opening = {**block, "input": {}}
            pieces = ["", *_pieces(json.dumps(block["input"]))]
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
        else:
            opening = {**block, "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
        yield {"type": "content_block_start", "index": index, "content_block": opening}
        for delta in deltas:
            yield {"type": "content_block_delta", "index": index, "delta": delta}
        yield {"type": "content_block_stop", "index": index}
    yield {"type": "ping"}
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    usage = {"output_tokens": final_usage["output_tokens"]}
    yield {"type": "message_delta", "delta": delta, "usage": usage}
    yield {"type": "message_stop"}


@contextmanager
def serve_messages_api(api_key: str | None = None, *, check: bool = True) -> Iterator[MessagesAPI]:
    """A running server; on a clean exit, fails when the script went wrong (`check`)."""
    api = MessagesAPI(api_key).start()
    try:
        yield api
    finally:
        api.close()
    if check and api.failures:
        raise AssertionError("scripted Messages API: " + "; ".join(api.failures))


@pytest.fixture(name="messages_api")
def messages_api_fixture() -> Iterator[MessagesAPI]:
    """Import it (`from tests.anthropic_server import messages_api_fixture  # noqa: F401`)
    into a test module or conftest to get the `messages_api` fixture."""
    with serve_messages_api() as api:
        yield api
