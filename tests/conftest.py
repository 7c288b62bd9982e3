"""Shared fixtures: a real MongoDB wire server and an in-process gateway.

One embedded server (secantusdb, in memory) serves the whole session; set
TEST_MONGODB_URI to run the same tests against a real MongoDB. Every test gets a
database of its own.
"""

from __future__ import annotations

import contextlib
import gc
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from gateway import passwords
from gateway.runtime import Services, build_services
from handlers.app import make_app
from storage.database import Storage
from storage.embedded import EmbeddedServer
from testkit.fakes.graph import FakeGraph
from testkit.fakes.telegram import FakeBotAPI
from testkit.fakes.twilio import FakeTwilio
from testkit.helpers import RETENTION_SECONDS, TEST_CONFIG, Client, CommandCounter, sign_up
from testkit.processes import Gateway


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashing() -> Iterator[None]:
    """argon2 at its cheapest in in-process gateways: the real cost (0.36 s per sign-up
    on this machine class) buys a test nothing. Processes the tests start keep it."""
    real = passwords._hasher
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    passwords._hasher = real


@pytest.fixture(autouse=True)
def collect_leaks() -> Iterator[None]:
    """Collect garbage after each test, so that a socket or file a test leaked raises
    its ResourceWarning in that test, not in whichever test the collector next runs."""
    yield
    gc.collect()


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


@contextlib.asynccontextmanager
async def fresh_storage(
    uri: str, *, sole_writer: bool = False, **client_options: Any
) -> AsyncIterator[Storage]:
    """A Storage on a database of its own, with every index; dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    store = Storage.connect(uri, name, sole_writer=sole_writer, **client_options)
    await store.ensure_indexes(RETENTION_SECONDS)
    try:
        yield store
    finally:
        await store.pages.newest.flush()  # else closing would write into the dropped database
        await store.client.drop_database(store.db.name)
        await store.close()


@pytest.fixture
def sole_writer() -> bool:
    """Whether the test's storage is told no other process writes its database (as
    on the embedded server); a module overrides this to test both."""
    return False


@pytest.fixture
async def storage(mongo_uri: str, sole_writer: bool) -> AsyncIterator[Storage]:
    async with fresh_storage(mongo_uri, sole_writer=sole_writer) as store:
        yield store


@pytest.fixture
def config_file(tmp_path: Path) -> Callable[[str], Path]:
    """Write a config file in the test's directory and return its path."""

    def write(text: str) -> Path:
        path = tmp_path / "config.yaml"
        path.write_text(text)
        return path

    return write


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


@pytest.fixture
async def api(client: Client) -> Client:
    """A client signed in as ``ana``, the first (bootstrap) agent."""
    return await sign_up(client, "ana")


@pytest.fixture
def commands() -> CommandCounter:
    return CommandCounter()


@pytest.fixture
async def counted_storage(
    mongo_uri: str, commands: CommandCounter, sole_writer: bool
) -> AsyncIterator[Storage]:
    """Like ``storage``, with every command it sends recorded in ``commands``."""
    options = {"sole_writer": sole_writer, "event_listeners": [commands]}
    async with fresh_storage(mongo_uri, **options) as store:
        yield store


@pytest.fixture
async def telegram_api() -> AsyncIterator[FakeBotAPI]:
    fake = await FakeBotAPI().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def graph_api() -> AsyncIterator[FakeGraph]:
    fake = await FakeGraph().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def twilio_api() -> AsyncIterator[FakeTwilio]:
    fake = await FakeTwilio().start()
    yield fake
    await fake.stop()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(tmp_path)
    yield gw
    if gw.process is not None and gw.process.poll() is None:
        gw.process.kill()
        gw.process.wait()
