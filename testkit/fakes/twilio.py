"""A small Twilio Messages API on 127.0.0.1 for twilio's async client."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from tornado.web import RequestHandler
from twilio.request_validator import RequestValidator

from testkit.fakes.local import Fetched, ScriptedFake, fetch_media
from testkit.fakes.script import Answer, Drop, Fail, next_answer

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "twilio-auth-token-do-not-log-0001"
FROM = "+14155238886"


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


@dataclass
class FakeTwilio(ScriptedFake):
    sent: list[dict[str, str]] = field(default_factory=list)
    send_script: list[Answer] = field(default_factory=list)
    base_url: str = ""
    # Awaited with (the request's form, the new message's sid) before answering a
    # create: a status callback can arrive before the sender hears back, as with Twilio.
    before_answer: Callable[[dict[str, str], str], Awaitable[None]] | None = None

    # media sid → (bytes, content type), at the URL media_url() names
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    media_requests: list[dict[str, str]] = field(default_factory=list)  # each one's headers
    # The Content API's entries (https://content.twilio.com/v1/ContentAndApprovals),
    # served a page of ``content_page_size`` at a time; each listing call is counted.
    contents: list[dict[str, Any]] = field(default_factory=list)
    content_page_size: int = 50
    content_calls: int = 0
    # MediaUrls of sends, fetched as Twilio does; ``hosts`` maps a URL prefix to where
    # it is served here (the gateway's public URL to its 127.0.0.1 port).
    fetched: list[Fetched] = field(default_factory=list)
    hosts: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._sids = itertools.count(1)

    def routes(self) -> list[Any]:
        return [
            (r"/2010-04-01/Accounts/(\w+)/Messages\.json", _Messages, {"fake": self}),
            (r"/2010-04-01/Accounts/(\w+)/Messages/\w+/Media/(\w+)", _Media, {"fake": self}),
            (r"/signed/(\w+)", _SignedMedia, {"fake": self}),
            (r"/v1/ContentAndApprovals", _Contents, {"fake": self}),
            (r"/2010-04-01/Accounts/(\w+)\.json", _Account, {"fake": self}),
        ]

    def media_url(self, media_sid: str) -> str:
        """The MediaUrl0 Twilio puts in a webhook, as the real one: on api.twilio.com."""
        return f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/{media_sid}"


def _authorized(request: Any, account: str) -> bool:
    expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    return account == ACCOUNT_SID and request.headers.get("Authorization") == f"Basic {expected}"


class _Account(RequestHandler):
    """The account itself: https://www.twilio.com/docs/iam/api/account#fetch-an-account-resource"""

    def initialize(self, fake: FakeTwilio) -> None:
        self.fake = fake

    def get(self, account: str) -> None:
        if not _authorized(self.request, account):
            self.set_status(401)
            self.finish(json.dumps({"code": 20003, "message": "Authenticate", "status": 401}))
            return
        self.finish(json.dumps({"sid": account, "friendly_name": "Test account",
                                "status": "active", "type": "Full"}))  # fmt: skip


class _Media(RequestHandler):
    """A media URL: with the account's credentials, a redirect to a short-lived signed
    URL on another path, as Twilio's is to its storage."""

    def initialize(self, fake: FakeTwilio) -> None:
        self.fake = fake

    def get(self, account: str, media_sid: str) -> None:
        self.fake.media_requests.append(dict(self.request.headers))
        if not _authorized(self.request, account):
            self.set_status(401)
        elif media_sid not in self.fake.media:
            self.set_status(404)
        else:
            self.redirect(f"/signed/{media_sid}", status=307)
            return
        self.finish()


class _Contents(RequestHandler):
    def initialize(self, fake: FakeTwilio) -> None:
        self.fake = fake

    def get(self) -> None:
        self.fake.content_calls += 1
        if not _authorized(self.request, ACCOUNT_SID):
            self.set_status(401)
            self.finish(json.dumps({"code": 20003, "message": "Authenticate", "status": 401}))
            return
        page = int(self.get_argument("Page", "0"))
        size = self.fake.content_page_size
        contents = self.fake.contents[page * size : (page + 1) * size]
        more = (page + 1) * size < len(self.fake.contents)
        next_url = f"{self.fake.base_url}/v1/ContentAndApprovals?Page={page + 1}" if more else None
        self.finish(json.dumps({"contents": contents, "meta": {"next_page_url": next_url}}))


class _SignedMedia(RequestHandler):
    def initialize(self, fake: FakeTwilio) -> None:
        self.fake = fake

    def get(self, media_sid: str) -> None:
        self.fake.media_requests.append(dict(self.request.headers))
        body, content_type = self.fake.media[media_sid]
        self.set_header("Content-Type", content_type)
        self.finish(body)


class _Messages(RequestHandler):
    def initialize(self, fake: FakeTwilio) -> None:
        self.fake = fake

    async def post(self, account: str) -> None:
        if not _authorized(self.request, account):
            self._error(401, 20003, "Authenticate")
            return
        form = dict(parse_qsl(self.request.body.decode()))
        answer = next_answer(self.fake.send_script)
        if isinstance(answer, Drop):
            self.request.connection.stream.close()
            return
        if isinstance(answer, Fail):
            self._error(answer.status, answer.code or answer.status, answer.message)
            return
        sid = f"SM{next(self.fake._sids):032d}"
        self.fake.sent.append({**form, "sid": sid})
        for url in [v for k, v in parse_qsl(self.request.body.decode()) if k == "MediaUrl"]:
            self.fake.fetched.append(await fetch_media(url, self.fake.hosts))
        if self.fake.before_answer is not None:
            await self.fake.before_answer(form, sid)
        self.set_status(201)
        self.finish(
            json.dumps(
                {
                    "sid": sid,
                    "account_sid": ACCOUNT_SID,
                    "to": form.get("To"),
                    "from": form.get("From"),
                    "body": form.get("Body"),
                    "status": "queued",
                }
            )
        )

    def _error(self, status: int, code: int, message: str) -> None:
        self.set_status(status)
        self.finish(json.dumps({"code": code, "message": message, "status": status}))
