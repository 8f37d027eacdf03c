"""The plan's `notify` webhook: a JSON POST when an execution waits on a human and when it
ends (Slack and Mattermost incoming webhooks take it as it is: it has a `text`).

The URL may be a secret (chat webhooks usually are): logs name its host only. Delivery is
retried by Temporal; the workflow logs a delivery that still fails and carries on.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from urllib.parse import urlsplit

from temporalio import activity
from temporalio.exceptions import ApplicationError

from coordinator.handoff import WebhookRequest, WebhookResult

TIMEOUT_S = 10


class NotifyActivities:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    def _url(self, request: WebhookRequest) -> str:
        if request.url:
            return request.url
        env = os.environ if self._environ is None else self._environ
        url = env.get(request.url_env or "")
        if not url:
            raise ApplicationError(
                f"notify.webhook_env names {request.url_env}, which is not set on this worker",
                type="WebhookNotConfigured",
                non_retryable=True,
            )
        return url

    @activity.defn(name="notify_webhook")
    async def webhook(self, request: WebhookRequest) -> WebhookResult:
        url = self._url(request)
        host = urlsplit(url).hostname or "?"
        data = json.dumps(request.payload).encode()
        post = urllib.request.Request(
            url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "coord"},
        )
        try:
            status = await asyncio.to_thread(_send, post)
        except urllib.error.HTTPError as err:
            retry = err.code >= 500 or err.code in (408, 429)
            raise ApplicationError(
                f"the webhook at {host} answered {err.code} {err.reason}",
                type="WebhookRefused",
                non_retryable=not retry,
            ) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ApplicationError(
                f"could not reach the webhook at {host}: {reason}", type="WebhookUnreachable"
            ) from None
        activity.logger.info("webhook at %s answered %d", host, status)
        return WebhookResult(delivered=True, status=status)


def _send(request: urllib.request.Request) -> int:
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        response.read()
        return int(response.status)
