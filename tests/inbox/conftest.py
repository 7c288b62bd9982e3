"""The inbox in a real browser: Debian's Chromium driven by Playwright, against
`bot-gateway serve` started as an operator starts it (no browser is downloaded)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright

from testkit.browser import CHROMIUM, LOOPBACK_ONLY, QUIET
from testkit.fakes.telegram import TOKEN, FakeBotAPI
from testkit.processes import Gateway, call, stop

PASSWORD = "correct horse battery"

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)"
)


class ThreadedBotAPI:
    """The fake Bot API on an event loop of its own thread: these tests are synchronous
    (Playwright's sync API), the fake is asyncio."""

    def __init__(self) -> None:
        self.fake = FakeBotAPI()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.fake.start(), self.loop).result(10)

    def call(self, do: Callable[[FakeBotAPI], Any]) -> Any:
        async def on_its_loop() -> Any:
            return do(self.fake)

        return asyncio.run_coroutine_threadsafe(on_its_loop(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Served:
    gateway: Gateway
    telegram: ThreadedBotAPI
    agents: dict[str, str] = field(default_factory=dict)  # username → id

    def close(self) -> None:
        if self.gateway.process is not None and self.gateway.process.poll() is None:
            stop(self.gateway.process)
        self.telegram.stop()

    @property
    def base(self) -> str:
        return self.gateway.url("")

    def token(self, username: str) -> str:
        status, pair = call(self.base, "POST", "/auth/token/",
                            {"username": username, "password": PASSWORD})  # fmt: skip
        assert status == 200, pair
        return str(pair["access"])

    def inbound(self, contact: str, text: str, name: str = "", channel: str = "mock") -> None:
        """A contact writes through a Mock channel's webhook."""
        body = {"contact_id": contact, "message": text, "name": name}
        status, answer = call(self.base, "POST", f"/webhooks/mock/{channel}/", body)
        assert status == 200, answer

    def api(self, username: str, method: str, path: str, body: Any = None) -> Any:
        status, answer = call(self.base, method, path, body, token=self.token(username))
        assert status < 300, (status, answer)
        return answer


def serve(workdir: Path) -> Served:
    """A gateway on its own embedded database, with agents ana (available) and bruno (away,
    so that new conversations go to ana), the mock channels mock, broken and botline
    (for a bot to answer), and a Telegram bot; :meth:`Served.close` stops it."""
    served = Served(Gateway(workdir), ThreadedBotAPI())
    # Besides the default mock channel: one whose every send fails at once (a reply
    # through it ends failed, with the channel's reason), and a Telegram bot polling
    # the fake Bot API, whose contacts send files.
    with served.gateway.config.open("a") as config:
        config.write(
            "delivery: {max_attempts: 1}\n"
            "channels:\n"
            "  - {name: mock, type: mock}\n"
            "  - {name: broken, type: mock, fail_first_sends: 1000000}\n"
            "  - {name: botline, type: mock}\n"
            f"  - {{name: telegram, type: telegram, token: '{TOKEN}', mode: polling,\n"
            f"      api_base: '{served.telegram.fake.base_url}', poll_timeout_seconds: 1,\n"
            "      seconds_between_messages_to_a_chat: 0}\n"
        )
    for username in ("ana", "bruno"):
        made = served.gateway.create_agent(username, PASSWORD)
        assert made.returncode == 0, made.stderr
    served.gateway.start()
    for username in ("ana", "bruno"):
        served.agents[username] = served.api(username, "GET", "/api/v1/agents/me/")["id"]
    served.api("bruno", "PATCH", "/api/v1/agents/me/", {"is_available": False})
    return served


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = serve(tmp_path_factory.mktemp("inbox"))
    yield served
    served.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=[*QUIET, LOOPBACK_ONLY])
        yield launched
        launched.close()


@dataclass
class Watched:
    """A page and what it did: console errors, dialogs, and every request's URL."""

    page: Any
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def foreign(self, base: str) -> list[str]:
        local = (base + "/", "data:", f"blob:{base}/")  # blob: the page's own fetched files
        return [url for url in self.requests if not url.startswith(local)]


def watch(page: Any) -> Watched:
    watched = Watched(page)
    page.on("console", lambda m: m.type == "error" and watched.errors.append(m.text))
    page.on("pageerror", lambda e: watched.errors.append(str(e)))
    page.on("request", lambda r: watched.requests.append(r.url))

    def dialog(d: Any) -> None:
        watched.dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    return watched


def open_page(browser: Any, **options: Any) -> tuple[Any, Watched]:
    context = browser.new_context(**options)
    page = context.new_page()
    page.set_default_timeout(10_000)  # a deadline on a busy machine, not a wait
    return context, watch(page)


@pytest.fixture
def tab(browser: Any, served: Served) -> Iterator[Watched]:
    """A fresh browser context (its own sessionStorage) on the inbox; at the end it
    must have logged no error and asked no host but the gateway."""
    context, watched = open_page(browser)
    yield watched
    context.close()
    assert watched.errors == []
    assert watched.foreign(served.base) == []
    assert watched.dialogs == []


def sign_in(page: Any, base: str, username: str = "ana") -> None:
    if not page.url.startswith(base + "/inbox/"):
        page.goto(base + "/inbox/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#app")).to_be_visible()
