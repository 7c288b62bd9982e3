"""A small Graph API (WhatsApp Cloud API messages) on 127.0.0.1, and signed webhooks."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from tornado.iostream import StreamClosedError
from tornado.web import RequestHandler

from testkit.fakes.local import Fetched, ScriptedFake, fetch_media
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
    # media id → (bytes, content type): its URL from GET /<id>, its bytes from there
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    media_requests: list[dict[str, str]] = field(default_factory=list)  # each one's headers
    # A send's media link, fetched as Meta does (see testkit.fakes.local.fetch_media).
    fetched: list[Fetched] = field(default_factory=list)
    hosts: dict[str, str] = field(default_factory=dict)
    # media id → the size GET /<id> states instead of the true one (a provider that
    # says less than it sends); its bytes then go a chunk at a time, counted in
    # ``streamed`` once the download ends (finished or cut).
    stated_size: dict[str, int] = field(default_factory=dict)
    streamed: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)

    def routes(self) -> list[Any]:
        return [
            (rf"/{VERSION}/(\w+)/messages", _Messages, {"fake": self}),
            (rf"/{VERSION}/(\d+)", _MediaUrl, {"fake": self}),
            (r"/whatsapp_business/attachments/(\d+)", _MediaFile, {"fake": self}),
        ]


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
        link = (request.get(request.get("type", "")) or {}).get("link")
        if link:
            self.fake.fetched.append(await fetch_media(link, self.fake.hosts))
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


def _bearer(handler: RequestHandler) -> bool:
    return handler.request.headers.get("Authorization") == f"Bearer {ACCESS_TOKEN}"


class _MediaUrl(RequestHandler):
    """GET /<media id>: where to download it for five minutes (Meta's lookaside URL);
    GET /<phone number id>: the business number."""

    def initialize(self, fake: FakeGraph) -> None:
        self.fake = fake

    def get(self, media_id: str) -> None:
        self.fake.media_requests.append(dict(self.request.headers))
        if not _bearer(self):
            self.set_status(401)
            self.finish({"error": {"message": "Invalid OAuth access token", "code": 190}})
            return
        if media_id == PHONE_NUMBER_ID:  # the sender's number, as doctor asks for it
            self.finish({"id": media_id, "display_phone_number": "+1 555-010-0199",
                         "verified_name": "Test Business", "quality_rating": "GREEN"})  # fmt: skip
            return
        if media_id not in self.fake.media:
            self.set_status(400)
            self.finish({"error": {"message": "Unsupported get request", "code": 100}})
            return
        data, content_type = self.fake.media[media_id]
        url = f"{self.fake.base_url}/whatsapp_business/attachments/{media_id}"
        size = self.fake.stated_size.get(media_id, len(data))
        self.finish({"messaging_product": "whatsapp", "url": url, "mime_type": content_type,
                     "file_size": size, "id": media_id})  # fmt: skip


class _MediaFile(RequestHandler):
    def initialize(self, fake: FakeGraph) -> None:
        self.fake = fake

    async def get(self, media_id: str) -> None:
        self.fake.media_requests.append(dict(self.request.headers))
        if not _bearer(self) or media_id not in self.fake.media:
            self.set_status(404)
            return
        data, content_type = self.fake.media[media_id]
        self.set_header("Content-Type", content_type)
        if media_id not in self.fake.stated_size:
            self.finish(data)
            return
        sent = 0
        try:
            for start in range(0, len(data), 65_536):  # chunked: no Content-Length
                self.write(data[start : start + 65_536])
                await self.flush()
                sent += min(65_536, len(data) - start)
            self.finish()
        except StreamClosedError:
            pass  # the client stopped reading and hung up
        self.fake.streamed[media_id] = sent


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
