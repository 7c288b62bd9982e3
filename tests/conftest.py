"""Shared fixtures: a real MongoDB wire server and an in-process gateway.

One embedded server (secantusdb, in memory) serves the whole session; set
TEST_MONGODB_URI to run the same tests against a real MongoDB. Every test gets a
database of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from gateway.app import Services, build_services, make_app
from gateway.config import AuthConfig, Config
from storage.database import Storage
from storage.embedded import EmbeddedServer

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


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A MongoDB wire server for the session: TEST_MONGODB_URI, or embedded in memory."""
    external = os.environ.get("TEST_MONGODB_URI")
    if external:
        yield external
        return
    server = EmbeddedServer(":memory:", workdir=tmp_path_factory.mktemp("mongo"))
    uri = server.start(timeout=60)
    try:
        yield uri
    finally:
        server.stop()  # by PID: terminate, then kill after a timeout


@pytest.fixture
def uses_embedded() -> bool:
    return not os.environ.get("TEST_MONGODB_URI")


@pytest.fixture
async def storage(mongo_uri: str) -> AsyncIterator[Storage]:
    """A connected Storage on a fresh database with every index created."""
    store = Storage.connect(mongo_uri, f"test_{uuid.uuid4().hex[:16]}")
    await store.ensure_indexes(RETENTION_SECONDS)
    try:
        yield store
    finally:
        await store.client.drop_database(store.db.name)
        await store.close()


@pytest.fixture
def config_file(tmp_path: Path) -> Callable[[str], Path]:
    """Write a config file in the test's directory and return its path."""

    def write(text: str) -> Path:
        path = tmp_path / "config.yaml"
        path.write_text(text)
        return path

    return write


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


@pytest.fixture
async def serve_app() -> AsyncIterator[Callable[[Services], Awaitable[Client]]]:
    """Serve ``make_app(services)`` on a free 127.0.0.1 port for the test."""
    servers: list[HTTPServer] = []

    async def start(services: Services) -> Client:
        sockets = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(make_app(services))
        server.add_sockets(sockets)
        servers.append(server)
        return Client(f"http://127.0.0.1:{sockets[0].getsockname()[1]}")

    yield start
    for server in servers:
        server.stop()
        await server.close_all_connections()


@pytest.fixture
async def client(storage: Storage, serve_app) -> Client:
    """A client of a gateway app on the test's database."""
    return await serve_app(build_services(TEST_CONFIG, storage))


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


@pytest.fixture
async def api(client: Client) -> Client:
    """A client signed in as ``ana``, the first (bootstrap) agent."""
    return await sign_up(client, "ana")
