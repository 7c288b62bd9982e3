"""A small Graph API (WhatsApp Cloud API messages) on 127.0.0.1, and signed webhooks."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from tornado.web import RequestHandler

from testkit.fakes.local import ScriptedFake
from testkit.fakes.script import Answer, Drop, Fail, next_answer

ACCESS_TOKEN = "graph-access-token-do-not-log-0001"
APP_SECRET = "graph-app-secret-do-not-log-0001"
VERIFY_TOKEN = "graph-verify-token-0001"
PHONE_NUMBER_ID = "106540352242922"
VERSION = "v21.0"


def signature(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class FakeGraph(ScriptedFake):
    """Sends are answered from ``send_script`` (testkit/fakes/script.py); a ``Fail``
    is a Graph error with its code and message."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    send_script: list[Answer] = field(default_factory=list)
    base_url: str = ""

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)

    def routes(self) -> list[Any]:
        return [(rf"/{VERSION}/(\w+)/messages", _Messages, {"fake": self})]


class _Messages(RequestHandler):
    def initialize(self, fake: FakeGraph) -> None:
        self.fake = fake

    async def post(self, phone_number_id: str) -> None:
        if self.request.headers.get("Authorization") != f"Bearer {ACCESS_TOKEN}":
            self._error(401, 190, "Invalid OAuth access token", "OAuthException")
            return
        if phone_number_id != PHONE_NUMBER_ID:
            self._error(400, 100, "Unsupported post request", "GraphMethodException")
            return
        request = json.loads(self.request.body)
        answer = next_answer(self.fake.send_script)
        if isinstance(answer, Drop):
            self.request.connection.stream.close()
            return
        if isinstance(answer, Fail):
            code = answer.code or answer.status
            self._error(answer.status, code, answer.message, "OAuthException")
            return
        wamid = f"wamid.{next(self.fake._ids):024d}"
        self.fake.sent.append({**request, "id": wamid})
        self.finish(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": request["to"], "wa_id": request["to"]}],
                "messages": [{"id": wamid}],
            }
        )

    def _error(self, status: int, code: int, message: str, kind: str) -> None:
        # https://developers.facebook.com/docs/graph-api/guides/error-handling
        self.set_status(status)
        self.finish({"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "A"}})


def webhook(
    *, messages: tuple[Any, ...] = (), statuses: tuple[Any, ...] = (), **value: Any
) -> dict[str, Any]:
    """A messages webhook of our number, as Meta sends it."""
    body = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": "Zé"}, "wa_id": "5511999990000"}],
        **({"messages": list(messages)} if messages else {}),
        **({"statuses": list(statuses)} if statuses else {}),
        **value,
    }
    change = {"field": "messages", "value": body}
    return {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [change]}]}


def text_message(wamid: str = "wamid.IN1", body: str = "Olá", **fields: Any) -> dict[str, Any]:
    return {
        "from": "5511999990000",
        "id": wamid,
        "timestamp": "1796140000",
        "type": "text",
        "text": {"body": body},
        **fields,
    }
