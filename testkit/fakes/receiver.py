"""A subscriber's webhook receiver on 127.0.0.1: verifies each delivery with the
Standard Webhooks reference library, as a subscriber's code would, and answers as
scripted (then 200)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from tornado.web import RequestHandler

from testkit.fakes.local import LocalServer


@dataclass
class Receiver:
    secret: str = ""  # the subscription's, once it is known
    script: list[int] = field(default_factory=list)  # statuses to answer first
    tries: list[str] = field(default_factory=list)  # every webhook-id that came
    accepted: list[dict[str, Any]] = field(default_factory=list)  # answered 2xx, in order
    forged: int = 0  # deliveries whose signature did not verify

    def __post_init__(self) -> None:
        self.server = LocalServer()

    @property
    def url(self) -> str:
        return self.server.base_url + "/hook"

    def start(self) -> Receiver:
        self.server.serve([(r"/hook", _Hook, {"receiver": self})])
        return self

    @property
    def ids(self) -> list[str]:
        """The ids of the accepted events, each once, in the order first accepted."""
        seen: dict[str, None] = {}
        for event in self.accepted:
            seen.setdefault(event["id"], None)
        return list(seen)


class _Hook(RequestHandler):
    def initialize(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def post(self) -> None:
        receiver = self.receiver
        headers = {name: value for name, value in self.request.headers.get_all()}
        receiver.tries.append(headers.get("Webhook-Id", ""))
        try:
            event = Webhook(receiver.secret).verify(self.request.body, headers)
        except WebhookVerificationError:
            receiver.forged += 1
            self.set_status(400)
            return
        status = receiver.script.pop(0) if receiver.script else 200
        self.set_status(status)
        if 200 <= status < 300:
            assert event["id"] == headers["Webhook-Id"], "the webhook-id is the event's id"
            receiver.accepted.append(event)
        self.finish(json.dumps({"ok": status < 300}))
