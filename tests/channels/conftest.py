"""A gateway with real channels, talking to fake providers on 127.0.0.1.

Every test here fails if a request leaves 127.0.0.1 or if a token or secret
shows up in any log record.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from gateway.config import ChannelConfig, DeliveryConfig, ServerConfig
from gateway.logs import CHATTY_LIBRARIES
from gateway.runtime import Runtime, Services
from handlers.events import event_json
from storage.database import Storage
from storage.models import Message
from testkit.fakes.script import Answer
from testkit.fakes.twilio import AUTH_TOKEN
from testkit.helpers import (
    TEST_CONFIG,
    Client,
    async_wait_until,
    free_port,
    sign_in,
    sign_up,
    wait_until,
)

PUBLIC_URL = "https://gw.example.com"
# The mock channel, as it must run on a gateway others can reach: with its secret.
MOCK_SECRET = "mock-secret-do-not-log"
MOCK = ChannelConfig(name="mock", type="mock", settings={"secret": MOCK_SECRET})
MOCK_URL = "/webhooks/mock/mock/"
MOCK_HEADERS = {"Content-Type": "application/json", "X-Mock-Secret": MOCK_SECRET}
FAST_RETRIES = DeliveryConfig(backoff_seconds=0.05, max_backoff_seconds=0.2, max_attempts=3)
SECRETS = ["TEST-telegram-token-do-not-log", AUTH_TOKEN, MOCK_SECRET, "hook-secret"]


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Refuse, and remember, any connection to an address off this machine."""
    escaped: list[Any] = []
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if not ipaddress.ip_address(host).is_loopback:
                escaped.append(address)
                raise ConnectionRefusedError(f"tests may not leave 127.0.0.1 (tried {host})")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield
    assert escaped == [], f"requests left 127.0.0.1: {escaped}"


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.DEBUG)
    # The libraries at the level the gateway logs them: a failed test's report then
    # shows our lines, not pages of the driver's every command. (Not caplog.set_level,
    # which would also raise its handler's level above our DEBUG and INFO lines.)
    libraries = [logging.getLogger(name) for name in CHATTY_LIBRARIES]
    levels = [library.level for library in libraries]
    for library in libraries:
        library.setLevel(logging.WARNING)
    yield
    for library, level in zip(libraries, levels, strict=True):
        library.setLevel(level)
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        for secret in SECRETS:
            assert secret not in text, f"a secret was logged by {record.name}: {text[:200]}"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server on 127.0.0.1, stopped by PID at the end."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("needs Debian's redis-server (.ci/run installs it)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path_factory.mktemp("redis"))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    try:
        wait_until(answers, 15, "redis-server to answer")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


@dataclasses.dataclass
class Gateway:
    services: Services
    anonymous: Client
    agent: Client

    @property
    def storage(self) -> Storage:
        return self.services.storage

    async def post(
        self, path: str, body: bytes | str, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        response = await self.anonymous.http.fetch(
            self.anonymous.base_url + path,
            method="POST",
            body=body,
            headers=headers,
            raise_error=False,
        )
        return response.code, response.body.decode()

    async def messages(self, **query: Any) -> list[dict[str, Any]]:
        documents = await self.storage.messages.collection.find(query).sort("list_key", 1).to_list()
        return documents

    async def listed(self) -> list[dict[str, Any]]:
        """The messages as the API lists them to an agent, newest first."""
        status, page = await self.agent.fetch("GET", "/api/v1/messages/")
        assert status == 200, page
        return list(page["results"])

    async def download(self, path: str) -> Any:
        """A GET as the agent, its raw response (a file, or a JSON error)."""
        headers = {"Authorization": f"Bearer {self.agent.token}"}
        url = self.agent.base_url + path
        return await self.agent.http.fetch(url, headers=headers, raise_error=False)

    async def cut_off(self, path: str, headers: dict[str, str], body: bytes, sent: int) -> None:
        """POST ``body``'s first ``sent`` bytes (its Content-Length says all of it), wait
        until the gateway has the request in flight, hang up, and wait until it ends."""
        host, port = self.anonymous.base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        lines = "".join(
            f"{k}: {v}\r\n" for k, v in {**headers, "Content-Length": len(body)}.items()
        )
        writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\n{lines}\r\n".encode() + body[:sent])
        await writer.drain()
        inflight = self.services.inflight

        async def counted(expected: int) -> bool:
            return inflight.count == expected

        await async_wait_until(lambda: counted(1), 5, "the request to be in flight")
        writer.close()  # the client goes away mid-body
        await async_wait_until(lambda: counted(0), 5, "the cut request to end")
        del reader

    async def send(self, contact_id: str, content: str) -> dict[str, Any]:
        status, message = await self.agent.fetch(
            "POST", "/api/v1/messages/", json_body={"contact_id": contact_id, "content": content}
        )
        assert status == 201, message
        return message

    async def stored(self, message_id: str) -> Message:
        message = await self.storage.messages.get(message_id)
        assert message is not None, f"message {message_id} is not stored"
        return message

    async def final(self, message_id: str, within: float = 10) -> dict[str, Any]:
        """The stored document of the message once it is sent or failed (polls with a
        deadline): delivery's own fields (attempts, claim) included."""
        seen: dict[str, Any] = {}

        async def settled() -> bool:
            seen.clear()  # the latest read only: a field may have gone since the last
            seen.update(await self.storage.messages.collection.find_one(message_id) or {})
            return seen.get("status") in ("sent", "failed")

        await async_wait_until(settled, within, f"message {message_id} to be sent or fail")
        return seen

    async def deliver(self, fake: Any, contact_id: str, case: Outgoing) -> dict[str, Any]:
        """Send one reply while ``fake`` answers as ``case`` scripts it; the message
        once it is settled, checked against the case."""
        fake.send_script = list(case.script)
        message = await self.send(contact_id, REPLY)
        final = await self.final(message["id"])
        assert (final["status"], final["attempts"]) == (case.status, case.attempts)
        if case.error is not None:
            assert case.error in final["error"]
        return final


REPLY = "Olá, Zé"  # what Gateway.deliver sends


@dataclasses.dataclass(frozen=True)
class Outgoing:
    """One row of a channel's table of sends: the fake provider's answers, in order
    (then "ok"), and how the message ends."""

    label: str
    script: list[Answer]
    status: str = "sent"
    attempts: int = 1
    error: str | None = None  # in the message's error, when it fails


def outgoing_cases(table: list[Outgoing]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("case", table, ids=[c.label for c in table])


@pytest.fixture
async def gateway(
    storage: Storage, serve_app: Callable[[Services], Awaitable[Client]]
) -> AsyncIterator[Callable[..., Awaitable[Gateway]]]:
    """Start the gateway's services with the given channels on the test database."""
    started: list[Runtime] = []

    async def start(
        *channels: ChannelConfig,
        delivery: DeliveryConfig = FAST_RETRIES,
        public_url: str = PUBLIC_URL,
        host: str = "127.0.0.1",
        **sections: Any,
    ) -> Gateway:
        config = dataclasses.replace(
            TEST_CONFIG,
            server=ServerConfig(public_url=public_url, host=host),
            delivery=delivery,
            channels=list(channels),
            **sections,
        )
        runtime = await Runtime.open(config, storage, present_event=event_json)
        started.append(runtime)
        anonymous = await serve_app(runtime.services)
        # Another gateway on the same database: ana exists already.
        agent = await (sign_up if len(started) == 1 else sign_in)(anonymous, "ana")
        return Gateway(runtime.services, anonymous, agent)

    yield start
    for runtime in started:
        await runtime.close()
