"""Errors of the Anthropic Messages API, as Temporal should see them (what retrying can fix is
retryable, honouring `retry-after`; what it cannot is not, with a message that ends up in the
escalation)."""

from __future__ import annotations

from contextlib import suppress
from datetime import timedelta
from typing import Any

import anthropic
from temporalio.exceptions import ApplicationError

_STATUS_OF = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


def api_status(err: anthropic.APIStatusError) -> tuple[int, str, str]:
    """(status, error type, message) of an API error. An `error` event inside a stream
    arrives with the stream's status (200): its type says what it is."""
    kind, message = _error_body(err)
    status = err.status_code if err.status_code >= 400 else _STATUS_OF.get(kind, 500)
    return status, kind, message


def api_error(
    err: anthropic.APIStatusError, *, where: str, model: str, spend: dict[str, Any]
) -> ApplicationError:
    """The error Temporal sees: non-retryable for what retrying cannot fix (400, 401, 403,
    404, 413), retryable (after `retry-after`) for the passing ones (408, 409, 429, 5xx,
    529). `spend` rides along as details: the workflow counts the money of failed attempts.
    It starts with `where` (the task and the specialist)."""
    status, kind, message = api_status(err)
    said = f"{status} {kind}: {message}" if kind else f"{status}: {message}"
    where = f"{where}: the Anthropic API answered {said}"
    if status in (401, 403):
        return ApplicationError(
            f"{where}. Check ANTHROPIC_API_KEY on the worker (and its permissions for "
            f"model {model}); retrying cannot fix it",
            spend,
            type="AnthropicCredentials",
            non_retryable=True,
        )
    if status == 404:
        return ApplicationError(
            f"{where}. Model {model!r} may not exist or not be available to this key: "
            "check the specialist's `model` and the `claude.models` table",
            spend,
            type="AnthropicNotFound",
            non_retryable=True,
        )
    if status == 413:
        return ApplicationError(
            f"{where}. The conversation is too large for one request: lower "
            "`claude.context_chars` or split the task",
            spend,
            type="AnthropicRequestTooLarge",
            non_retryable=True,
        )
    if status == 400 or (400 <= status < 500 and status not in (408, 409, 429)):
        return ApplicationError(
            f"{where}. This is a bug or a limit in the request, not a passing problem",
            spend,
            type="AnthropicInvalidRequest",
            non_retryable=True,
        )
    # 408, 409, 429, 5xx and 529: passing; Temporal retries, after retry-after if given.
    delay = _retry_after(err)
    return ApplicationError(
        where,
        spend,
        type="AnthropicOverloaded" if status == 529 else "AnthropicUnavailable",
        next_retry_delay=timedelta(seconds=delay) if delay is not None else None,
    )


def _error_body(err: anthropic.APIStatusError) -> tuple[str, str]:
    body = err.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("type", "")), str(inner.get("message", err.message))
    return "", str(err.message)


def _retry_after(err: anthropic.APIStatusError) -> float | None:
    headers = err.response.headers
    with suppress(TypeError, ValueError):
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(ms) / 1000)
        if (seconds := headers.get("retry-after")) is not None:
            return max(0.0, float(seconds))
    return None
