"""What every fake provider shares: a quiet Tornado server on 127.0.0.1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from testkit.fakes.script import Answer


class LocalServer:
    """Serves ``routes`` on a free 127.0.0.1 port; ``base_url`` says where."""

    def __init__(self) -> None:
        self.base_url = ""
        self.port = 0
        self._routes: list[Any] = []
        self._server: HTTPServer | None = None

    def serve(self, routes: list[Any]) -> None:
        self._routes = routes
        sockets = bind_sockets(self.port, "127.0.0.1")
        self._server = HTTPServer(Application(routes, log_function=_quiet))
        self._server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()
            self._server = None

    async def refuse(self) -> None:
        """Stop listening: connections are refused until :meth:`resume`."""
        await self.stop()

    def resume(self) -> None:
        """Listen again on the same port."""
        self.serve(self._routes)


class ScriptedFake:
    """Start and stop of a fake provider on a :class:`LocalServer`: ``routes()`` are
    its handlers; on stop, a scripted answer nobody asked for fails the test."""

    base_url: str
    send_script: list[Answer]

    def routes(self) -> list[Any]:
        raise NotImplementedError

    async def start(self) -> Self:
        self._server = LocalServer()
        self._server.serve(self.routes())
        self.base_url = self._server.base_url
        return self

    async def stop(self) -> None:
        await self._server.stop()
        assert_all_used(send_script=self.send_script)


def assert_all_used(**scripts: list[Any]) -> None:
    """Fail the test whose fake was scripted with answers nobody asked for: the
    fault it meant to inject never happened."""
    left = {name: script for name, script in scripts.items() if script}
    assert not left, f"scripted answers never asked for: {left}"


def _quiet(handler: RequestHandler) -> None:
    """A fake's own access log shows credentials in its URLs; it is not ours to test."""


@dataclass
class Fetched:
    """A file a provider fetched from a URL it was given (HEAD, then GET)."""

    url: str
    status: int
    content_type: str
    data: bytes
    head_status: int


async def fetch_media(url: str, hosts: dict[str, str]) -> Fetched:
    """Fetch a media URL as Twilio and Meta do before they send it. ``hosts`` maps a
    URL prefix to where it is served here (the gateway's public URL to its port)."""
    for prefix, served in hosts.items():
        if url.startswith(prefix):
            url = served + url.removeprefix(prefix)
    client = AsyncHTTPClient()
    head = await client.fetch(url, method="HEAD", raise_error=False)
    got = await client.fetch(url, raise_error=False)
    return Fetched(url, got.code, got.headers.get("Content-Type", ""), got.body or b"", head.code)


class FileHost:
    """A web server with files at URLs, as an agent's own storage would be: providers
    fetch a ``media_url`` from it. ``requests`` counts who asked, by path."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}  # path → (bytes, content type)
        self.requests: list[str] = []
        self._server = LocalServer()

    async def start(self) -> FileHost:
        self._server.serve([(r"(/.*)", _HostedFile, {"host": self})])
        return self

    def add(self, path: str, data: bytes, content_type: str) -> str:
        """Serve ``data`` at ``path``; returns its URL."""
        self.files[path] = (data, content_type)
        return self._server.base_url + path

    async def stop(self) -> None:
        await self._server.stop()


class _HostedFile(RequestHandler):
    def initialize(self, host: FileHost) -> None:
        self.host = host

    def get(self, path: str) -> None:
        self.host.requests.append(path)
        if path not in self.host.files:
            self.set_status(404)
            return
        data, content_type = self.host.files[path]
        self.set_header("Content-Type", content_type)
        self.finish(data)

    head = get
