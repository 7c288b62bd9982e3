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

from channels.base import (
    Channel,
    ChannelContext,
    ChannelRecord,
    Inbound,
    NetworkFailure,
    WebhookRefused,
    WebhookRequest,
    WebhookResult,
    WebhookRoute,
    check_text,
    log,
)
from common.wire import load_json, secrets_match

MAX_TEXT = 4096  # as Telegram's: the mock stands in for a real channel
MAX_BODY = 256 * 1024  # a text of 4,096 characters, each escaped as a surrogate pair


@dataclass(frozen=True)
class MockSettings:
    # Shared secret the caller sends as X-Mock-Secret. Empty: the webhook is open, so
    # the channel runs only while nobody but this machine can reach the gateway.
    secret: str = ""
    # Fail this many sends with a network error before succeeding.
    fail_first_sends: int = 0


class MockChannel(Channel):
    type = "mock"
    Settings = MockSettings
    secrets = ("secret",)

    def __init__(self, record: ChannelRecord, settings: MockSettings, context: ChannelContext):
        super().__init__(record, settings, context)
        self._failures_left = settings.fail_first_sends
        self._sent = itertools.count(1)
        if not settings.secret:
            log.warning("mock channel %r accepts webhooks without a secret (from this "
                        "machine only)", self.name)  # fmt: skip

    @classmethod
    def off_because(cls, settings: MockSettings, context: ChannelContext) -> str | None:
        if settings.secret or context.loopback_only:
            return None
        # Anyone who can reach an open mock webhook can put messages in the inbox.
        return "no secret (MOCK_WEBHOOK_SECRET) while the gateway can be reached from elsewhere"

    async def parse_webhook(self, request: WebhookRequest) -> WebhookResult:
        if self.settings.secret and not secrets_match(
            self.settings.secret, request.headers.get("X-Mock-Secret")
        ):
            raise WebhookRefused(401, "missing or wrong X-Mock-Secret")
        if not self.settings.secret and not request.from_loopback:
            # A local reverse proxy would relay anyone: open means this machine only.
            raise WebhookRefused(
                403, "without a secret the mock webhook answers only direct calls from this machine"
            )
        try:
            data = load_json(request.body)
        except ValueError as exc:
            raise WebhookRefused(400, str(exc)) from None
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
        check_text(text, "message", MAX_TEXT)
        # Without a message_id every call is a new message (the reference's behaviour).
        # A JSON pair, so ("a:b", "c") and ("a", "b:c") are two keys.
        dedupe = (
            json.dumps([str(contact), str(message_id)], ensure_ascii=False)
            if message_id is not None
            else str(uuid.uuid4())
        )
        message = Inbound(
            contact_external_id=str(contact),
            dedupe_key=dedupe,
            text=text,
            name=name,
            username=username,
            external_id=str(message_id or ""),
        )
        return WebhookResult(messages=[message])

    webhook_routes = (WebhookRoute("", parse_webhook, max_body=MAX_BODY),)

    async def send(self, to: str, text: str, message_id: str) -> str:
        if self._failures_left > 0:
            self._failures_left -= 1
            raise NetworkFailure("mock channel: configured to fail this send")
        return f"mock-{next(self._sent)}-{message_id}"
