"""A small Bot API server on 127.0.0.1 for aiogram to talk to.

It queues updates for getUpdates, records every sendMessage and every file sent
(fetching a file sent by URL, as Telegram does), and answers sends
from a script (testkit/fakes/script.py; a ``Fail``'s message is the Bot API's
description, and with ``retry_after`` it is a flood wait). ``failing`` makes every
call answer 502 (an HTML page from ``updates_script`` entries "html" only), and
``refuse()`` stops listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from tornado.httpclient import AsyncHTTPClient
from tornado.web import RequestHandler

from testkit.fakes.local import LocalServer, assert_all_used
from testkit.fakes.script import OK, Answer, Drop, next_answer

TOKEN = "123456:TEST-telegram-token-do-not-log"

WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)


@dataclass
class Sent:
    chat_id: int
    text: str
    at: float


@dataclass
class SentFile:
    """A file sent with sendPhoto, sendDocument, sendVoice or sendVideo: uploaded, or
    fetched from its URL as Telegram does."""

    method: str
    chat_id: int
    caption: str
    data: bytes
    file_name: str
    url: str = ""  # "" for an upload


# https://core.telegram.org/bots/api#sending-files: each method's file parameter
FILE_METHODS = {"sendPhoto": "photo", "sendDocument": "document", "sendVoice": "voice",
                "sendVideo": "video"}  # fmt: skip


@dataclass
class FakeBotAPI:
    token: str = TOKEN
    updates: list[dict[str, Any]] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    refused: list[Sent] = field(default_factory=list)  # sends the script answered with an error
    send_script: list[Answer] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    webhook: dict[str, Any] = field(default_factory=dict)
    base_url: str = ""
    down: bool = False  # drop every connection, as if Telegram were unreachable
    failing: bool = False  # answer every call 502, as Telegram's front end does at times
    redirecting: bool = False  # redirect every call to itself, as a broken proxy may
    updates_script: list[Any] = field(default_factory=list)  # "html": one non-JSON answer
    send_delay: float = 0.0  # seconds each sendMessage takes
    polls_at_once: int = 0  # getUpdates calls being answered now
    # file_id → (bytes, content type): getFile answers with a path, /file/ serves it
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    file_downloads: int = 0
    files_sent: list[SentFile] = field(default_factory=list)
    most_polls_at_once: int = 0

    def __post_init__(self) -> None:
        self._update_ids = itertools.count(1000)
        self._message_ids = itertools.count(1)
        self._new_update = asyncio.Event()
        self._sends_open = asyncio.Event()
        self._sends_open.set()
        self._server = LocalServer()

    async def start(self) -> FakeBotAPI:
        self._loop = asyncio.get_running_loop()
        self._server.serve([
            (r"/bot([^/]+)/(\w+)", _Method, {"fake": self}),
            (r"/file/bot([^/]+)/(.+)", _File, {"fake": self}),
        ])  # fmt: skip
        self.base_url = self._server.base_url
        return self

    def hold_sends(self, held: bool = True) -> None:
        """Make sendMessage calls wait (or let them go); callable from any thread."""
        event = self._sends_open
        self._loop.call_soon_threadsafe(event.clear if held else event.set)

    async def stop(self) -> None:
        await self._server.stop()
        assert_all_used(send_script=self.send_script, updates_script=self.updates_script)

    async def refuse(self) -> None:
        """Refuse connections, as an unreachable host does, until :meth:`resume`."""
        await self._server.refuse()

    def resume(self) -> None:
        self._server.resume()

    def user_writes(
        self, user_id: int, text: str, first_name: str = "Ana", username: str = "", **extra: Any
    ) -> dict[str, Any]:
        """Queue an update as if ``user_id`` wrote ``text`` to the bot in private."""
        update = make_update(
            next(self._update_ids),
            user_id,
            text,
            first_name,
            username,
            next(self._message_ids),
            **extra,
        )
        self.updates.append(update)
        self._new_update.set()
        return update

    def sent_to(self, chat_id: int) -> list[str]:
        return [s.text for s in self.sent if s.chat_id == chat_id]

    # -- the Bot API methods ---------------------------------------------------------

    async def call(self, handler: _Method, method: str, params: dict[str, Any]) -> Any:
        self.calls.append(method)
        if self.down:
            raise _Drop()
        if self.failing:
            raise _Answer(502, "Bad Gateway")
        if self.redirecting:
            raise _Redirect()
        if method == "getMe":
            return {"id": 1, "is_bot": True, "first_name": "Test bot", "username": "test_bot"}
        if method == "getUpdates" and self.webhook.get("url"):
            raise _Answer(409, WEBHOOK_CONFLICT)  # what Telegram answers, as of Bot API 9
        if method == "getUpdates":
            self.polls_at_once += 1
            self.most_polls_at_once = max(self.most_polls_at_once, self.polls_at_once)
            try:
                return await self._get_updates(params)
            finally:
                self.polls_at_once -= 1
        if method in ("setWebhook", "deleteWebhook"):
            self.webhook = params if method == "setWebhook" else {}
            return True
        if method == "getWebhookInfo":  # https://core.telegram.org/bots/api#getwebhookinfo
            url = self.webhook.get("url", "")
            return {"url": url, "has_custom_certificate": False, "pending_update_count": 0}
        if method == "getFile":  # https://core.telegram.org/bots/api#getfile
            file_id = params.get("file_id", "")
            if file_id not in self.files:
                raise _Answer(400, "Bad Request: invalid file_id")
            size = len(self.files[file_id][0])
            return {"file_id": file_id, "file_unique_id": "u" + file_id, "file_size": size,
                    "file_path": f"documents/{file_id}"}  # fmt: skip
        if method in FILE_METHODS:
            return await self._send_file(handler, method, params)
        if method == "sendMessage":
            await self._sends_open.wait()
            if self.send_delay:
                await asyncio.sleep(self.send_delay)
            return self._send(handler, params)
        raise _Answer(404, "Not Found: method not found")

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.updates_script and self.updates_script.pop(0) == "html":
            raise _Html()
        offset = int(params.get("offset") or 0)
        # Asking with an offset confirms every update before it.
        self.updates = [u for u in self.updates if u["update_id"] >= offset]
        if not self.updates:
            self._new_update.clear()
            wait = min(float(params.get("timeout") or 0), 0.5)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), wait)
        return list(self.updates)

    async def _send_file(self, handler: _Method, method: str, params: dict[str, Any]) -> Any:
        kind = FILE_METHODS[method]
        value = params.get(kind, "")
        if value.startswith("attach://"):  # a part of this multipart request
            parts = handler.request.files.get(value.removeprefix("attach://")) or []
            if not parts:
                raise _Answer(400, f"Bad Request: file {value} is not in the request")
            data, name, url = parts[0].body, parts[0].filename, ""
        elif value.startswith(("http://", "https://")):
            try:  # as Telegram does: a URL it cannot fetch is the sender's mistake
                fetched = await AsyncHTTPClient().fetch(value, raise_error=False)
            except OSError:  # a name that does not resolve, here or anywhere
                raise _Answer(400, "Bad Request: failed to get HTTP URL content") from None
            if fetched.code != 200:
                raise _Answer(400, "Bad Request: failed to get HTTP URL content")
            data, name, url = fetched.body, value.rpartition("/")[2], value
        else:
            raise _Answer(400, "Bad Request: wrong remote file identifier specified")
        chat_id = int(params["chat_id"])
        caption = params.get("caption", "")
        self.files_sent.append(SentFile(method, chat_id, caption, data, name, url))
        file = {"file_id": f"sent{len(self.files_sent)}", "file_unique_id": "u",
                "file_size": len(data), "width": 1, "height": 1, "duration": 1}  # fmt: skip
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            kind: [file] if kind == "photo" else file,
            **({"caption": caption} if caption else {}),
        }

    def _send(self, handler: _Method, params: dict[str, Any]) -> dict[str, Any]:
        answer = next_answer(self.send_script)
        if answer == OK:
            chat_id = int(params["chat_id"])
            self.sent.append(Sent(chat_id, params["text"], time.monotonic()))
            return {
                "message_id": next(self._message_ids),
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "text": params["text"],
            }
        self.refused.append(Sent(int(params["chat_id"]), params["text"], time.monotonic()))
        if isinstance(answer, Drop):
            raise _Drop()
        if answer.retry_after is not None:
            description = f"Too Many Requests: retry after {answer.retry_after}"
            raise _Answer(answer.status, description, {"retry_after": answer.retry_after})
        raise _Answer(answer.status, answer.message)


class _Answer(Exception):
    def __init__(self, status: int, description: str, parameters: dict | None = None) -> None:
        self.status, self.description, self.parameters = status, description, parameters


class _Drop(Exception):
    """Close the connection without an answer, like a network failure."""


class _Redirect(Exception):
    """Send the client back to the URL it asked (307 keeps the method and the body)."""


class _Html(Exception):
    """Answer with an HTML error page, as Telegram's front end sometimes does."""


class _Method(RequestHandler):
    def initialize(self, fake: FakeBotAPI) -> None:
        self.fake = fake

    async def post(self, token: str, method: str) -> None:
        if token != self.fake.token:
            self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            return
        params = {k: v[-1].decode() for k, v in self.request.body_arguments.items()}
        if self.request.headers.get("Content-Type", "").startswith("application/json"):
            params = json.loads(self.request.body or b"{}")
        try:
            result = await self.fake.call(self, method, params)
        except _Drop:
            self.request.connection.stream.close()
            return
        except _Redirect:
            self.set_status(307)
            self.set_header("Location", self.request.full_url())
            self.finish()
            return
        except _Html:
            self.set_status(502)
            self.set_header("Content-Type", "text/html")
            self.finish("<html><body><h1>502 Bad Gateway</h1></body></html>")
            return
        except _Answer as answer:
            body: dict[str, Any] = {
                "ok": False,
                "error_code": answer.status,
                "description": answer.description,
            }
            if answer.parameters:
                body["parameters"] = answer.parameters
            self._reply(answer.status, body)
            return
        self._reply(200, {"ok": True, "result": result})

    get = post

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


class _File(RequestHandler):
    """The Bot API's file server: the bytes at the path getFile gave, with their type."""

    def initialize(self, fake: FakeBotAPI) -> None:
        self.fake = fake

    def get(self, token: str, path: str) -> None:
        file_id = path.removeprefix("documents/")
        if token != self.fake.token or file_id not in self.fake.files:
            self.set_status(404)
            self.finish()
            return
        body, content_type = self.fake.files[file_id]
        self.fake.file_downloads += 1
        self.set_header("Content-Type", content_type)
        self.finish(body)


def make_update(
    update_id: int,
    user_id: int,
    text: str | None,
    first_name: str = "Ana",
    username: str = "",
    message_id: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    user = {"id": user_id, "is_bot": False, "first_name": first_name}
    if username:
        user["username"] = username
    message: dict[str, Any] = {
        "message_id": message_id,
        "date": int(time.time()),
        "chat": {"id": user_id, "type": "private", "first_name": first_name},
        "from": user,
        **extra,
    }
    if text is not None:
        message["text"] = text
    return {"update_id": update_id, "message": message}
