"""Helpers the tests share: polling with a deadline, an HTTP client, sign-up."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

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
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        self.commands.append((event.command_name, target if isinstance(target, str) else ""))

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
