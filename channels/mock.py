"""The built-in Mock channel: a JSON webhook and a send that needs no provider.

Its webhook takes the reference project's fields
``{contact_id, message, name?, username?, message_id?}``. Its send succeeds at
once, or fails the first ``fail_first_sends`` times, for trying retries by hand.
"""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass
from typing import Any

from channels.base import (
    Channel,
    ChannelContext,
    Inbound,
    NetworkFailure,
    WebhookRefused,
    WebhookRequest,
    log,
    secrets_match,
)


@dataclass(frozen=True)
class MockSettings:
    # Shared secret the caller sends as X-Mock-Secret; empty: the webhook is open.
    secret: str = ""
    # Fail this many sends with a network error before succeeding.
    fail_first_sends: int = 0


class MockChannel(Channel):
    type = "mock"
    Settings = MockSettings
    secrets = ("secret",)

    def __init__(self, record: dict[str, Any], settings: MockSettings, context: ChannelContext):
        super().__init__(record, settings, context)
        self._failures_left = settings.fail_first_sends
        self._sent = itertools.count(1)
        if not settings.secret:
            log.warning("mock channel %r accepts webhooks without a secret", self.name)

    async def parse_webhook(self, request: WebhookRequest) -> list[Inbound]:
        if self.settings.secret and not secrets_match(
            self.settings.secret, request.headers.get("X-Mock-Secret")
        ):
            raise WebhookRefused(401, "missing or wrong X-Mock-Secret")
        try:
            data = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise WebhookRefused(400, "the body must be JSON") from None
        if not isinstance(data, dict):
            raise WebhookRefused(400, "the body must be a JSON object")
        contact, text = data.get("contact_id"), data.get("message")
        if not isinstance(contact, str | int) or isinstance(contact, bool) or contact == "":
            raise WebhookRefused(400, "contact_id: required, a string or an integer")
        if not isinstance(text, str) or not text.strip():
            raise WebhookRefused(400, "message: required, non-empty text")
        name, username = data.get("name", ""), data.get("username", "")
        message_id = data.get("message_id")
        if not all(isinstance(v, str) for v in (name, username)):
            raise WebhookRefused(400, "name and username must be strings")
        if message_id is not None and (
            not isinstance(message_id, str | int) or isinstance(message_id, bool)
        ):
            raise WebhookRefused(400, "message_id: a string or an integer")
        # Without a message_id every call is a new message (the reference's behaviour).
        dedupe = f"{contact}:{message_id}" if message_id is not None else str(uuid.uuid4())
        return [
            Inbound(
                contact_external_id=str(contact),
                dedupe_key=dedupe,
                text=text,
                name=name,
                username=username,
                external_id=str(message_id or ""),
            )
        ]

    async def send(self, to: str, text: str, message_id: str) -> str:
        if self._failures_left > 0:
            self._failures_left -= 1
            raise NetworkFailure("mock channel: configured to fail this send")
        return f"mock-{next(self._sent)}-{message_id}"
