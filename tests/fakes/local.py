"""What every fake provider shares: a quiet Tornado server on 127.0.0.1."""

from __future__ import annotations

from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler


class LocalServer:
    """Serves ``routes`` on a free 127.0.0.1 port; ``base_url`` says where."""

    def __init__(self) -> None:
        self.base_url = ""
        self._server: HTTPServer | None = None

    def serve(self, routes: list[Any]) -> None:
        sockets = bind_sockets(0, "127.0.0.1")
        self._server = HTTPServer(Application(routes, log_function=_quiet))
        self._server.add_sockets(sockets)
        self.base_url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()


def _quiet(handler: RequestHandler) -> None:
    """A fake's own access log shows credentials in its URLs; it is not ours to test."""
