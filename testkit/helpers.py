"""Helpers the tests share: polling with a deadline, an HTTP client, sign-up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pymongo import monitoring
from tornado.httpclient import AsyncHTTPClient

from gateway.config import AuthConfig, Config
from storage.contacts import Sighting
from storage.database import Storage
from storage.messages import inbound_document
from storage.models import Contact

RETENTION_SECONDS = 30 * 86400
TEST_CONFIG = Config(auth=AuthConfig(jwt_secret="test-secret-" + "x" * 32))


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


async def async_wait_until(
    condition: Callable[[], Awaitable[bool]], within: float, what: str
) -> None:
    """:func:`wait_until` for a coroutine condition."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(0.05)


def free_port() -> int:
    """A port nobody listens on, below the kernel's ephemeral range: the outgoing
    connections tests open (over a thousand at once in the hostile-edge tests) take
    their ports from that range, and one could take a port picked there before the
    server the test starts has bound it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(100):
        port = random.randrange(10_000, low)
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))  # noqa: S104 - free on every address
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


class Client:
    """Calls an in-process gateway over real HTTP and decodes JSON answers."""

    def __init__(self, base_url: str, token: str | None = None, refresh: str | None = None):
        self.base_url = base_url
        self.token = token
        self.refresh = refresh
        self.http = AsyncHTTPClient()

    def as_agent(self, token: str | None, refresh: str | None = None) -> Client:
        """The same server, calling with ``token`` as the bearer."""
        return Client(self.base_url, token, refresh)

    async def fetch(
        self,
        method: str,
        path: str,
        *,
        json_body: object = None,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, object]:
        if json_body is not None:
            body = json.dumps(json_body)
            headers = {"Content-Type": "application/json", **(headers or {})}
        if self.token and "Authorization" not in (headers or {}):
            headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        response = await self.http.fetch(
            self.base_url + path,
            method=method,
            body=body,
            headers=headers,
            raise_error=False,
            allow_nonstandard_methods=True,
        )
        text = response.body.decode() if response.body else ""
        return response.code, json.loads(text) if text else None

    async def metric(self, series: str) -> float | None:
        """The value of one series on ``/metrics`` (None when it is not there)."""
        response = await self.http.fetch(self.base_url + "/metrics", raise_error=False)
        for line in response.body.decode().splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return None


async def sign_up(client: Client, username: str, password: str = "correct horse") -> Client:
    """Create an agent (with ``client``'s credentials, if any) and sign it in."""
    status, body = await client.fetch(
        "POST", "/api/v1/agents/", json_body={"username": username, "password": password}
    )
    assert status == 201, body
    return await sign_in(client, username, password)


async def sign_in(client: Client, username: str, password: str = "correct horse") -> Client:
    status, body = await client.fetch(
        "POST", "/auth/token/", json_body={"username": username, "password": password}
    )
    assert status == 200, body
    return client.as_agent(body["access"], body["refresh"])


class CommandCounter(monitoring.CommandListener):
    """Counts the database commands a piece of code sends, by command and collection."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, str]] = []
        self.hinted: list[tuple[str, str]] = []  # commands naming an index to use
        self.finds: list[dict[str, Any]] = []  # each find command, whole

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        command = (event.command_name, target if isinstance(target, str) else "")
        self.commands.append(command)
        if event.command_name == "find":
            self.finds.append(dict(event.command))
        statements = [event.command, *event.command.get("updates", ())]
        if any("hint" in statement for statement in statements):
            self.hinted.append(command)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def count(self, command: str, collection: str) -> int:
        return self.commands.count((command, collection))


# -- the database as the inbound path leaves it, written by its own bulk calls -------


async def seen(
    storage: Storage,
    channel_id: str,
    external_id: str,
    *,
    name: str = "",
    username: str = "",
    at: datetime | None = None,
) -> Contact:
    """A contact written the way a webhook writes it (``record_seen_many``)."""
    sighting = Sighting(channel_id, external_id, name, username)
    return (await storage.contacts.record_seen_many([sighting], at))[sighting.contact_id]


async def received(
    storage: Storage, contact: Contact, dedupe_key: str, content: str, *, channel_id: str = ""
) -> tuple[str, bool]:
    """An inbound message stored the way a webhook stores it (``insert_inbound_many``):
    ``(its id, whether it was stored now)``; a repeat names the stored one."""
    channel_id = channel_id or contact.channel_id
    document = inbound_document(
        channel_id=channel_id, contact=contact, dedupe_key=dedupe_key, content=content
    )
    [created] = await storage.messages.insert_inbound_many([document])
    assert not isinstance(created, Exception), created
    if created:
        return document["_id"], True
    stored = await storage.messages.collection.find_one(
        {"channel_id": channel_id, "dedupe_key": dedupe_key}
    )
    assert stored is not None
    return stored["_id"], False


class EventStream:
    """A client of ``/api/v1/events/``: a raw HTTP/1.0 connection (the answer then
    streams unchunked until either side closes) parsed as Server-Sent Events."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.status = 0
        self.headers: dict[str, str] = {}
        self.comments: list[str] = []

    @classmethod
    async def open(
        cls, base_url: str, path: str = "/api/v1/events/", headers: dict[str, str] | None = None
    ) -> EventStream:
        address = urlsplit(base_url)
        reader, writer = await asyncio.open_connection(address.hostname, address.port)
        lines = [f"GET {path} HTTP/1.0", f"Host: {address.netloc}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        stream = cls(reader, writer)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *header_lines = head.decode().split("\r\n")
        stream.status = int(status_line.split()[1])
        for line in header_lines:
            if ":" in line:
                name, _, value = line.partition(":")
                stream.headers[name.strip().lower()] = value.strip()
        return stream

    async def next(self, within: float = 10.0) -> dict[str, Any]:
        """The next event, ``{"id", "event", "data"}`` (data decoded); comments are kept
        in ``comments``. Fails the test if none comes ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no event within {within:g} s")
            try:
                event = await self._block(left)
            except TimeoutError:
                continue
            if event:
                return event

    async def replayed(self, within: float = 10.0) -> list[dict[str, Any]]:
        """The events a resumed stream replays, up to its ``: connected`` comment."""
        events = []
        while "connected" not in self.comments:
            event = await self._block(within)
            if event:
                events.append(event)
        return events

    async def _block(self, within: float) -> dict[str, Any]:
        block = await asyncio.wait_for(self.reader.readuntil(b"\n\n"), within)
        event: dict[str, Any] = {}
        for line in block.decode().strip("\n").split("\n"):
            name, _, value = line.partition(":")
            if name == "":
                self.comments.append(value.strip())
            elif name == "data":
                event["data"] = json.loads(value.strip())
            else:
                event[name] = value.strip()
        return event

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def multipart(
    fields: dict[str, str], files: list[tuple[str, str, bytes, str]]
) -> tuple[bytes, str]:
    """A multipart/form-data body of text ``fields`` and ``(part, file name, bytes,
    type)`` files, as a browser or curl -F sends it; returns it and its Content-Type."""
    boundary = "----bot-gateway-test-" + "7" * 16
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    for part, file_name, data, content_type in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{part}"; '
            f'filename="{file_name}"\r\nContent-Type: {content_type}\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


async def logged_after(agent: Client, event_id: str) -> list[dict[str, Any]]:
    """Every event after ``event_id`` (its id, event and data), as a stream resumed
    from it replays them: what the log holds."""
    auth = {"Authorization": f"Bearer {agent.token}"}
    stream = await EventStream.open(
        agent.base_url, f"/api/v1/events/?last_event_id={event_id}", auth
    )
    try:
        return await stream.replayed()
    finally:
        await stream.close()
