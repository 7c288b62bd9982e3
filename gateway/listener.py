"""The HTTP server's edge: timeouts, a connection cap, and accepting that survives
running out of file descriptors.

Tornado's own accept loop re-raises EMFILE on every wake-up of the listening
socket, which spins a core and logs a traceback each time: here accepting pauses
for a moment instead, and says so at most once a second. Connections past the cap
are closed at once, so a flood of idle ones cannot take the descriptors that
probes, the database and providers need; and no one address (but a trusted proxy,
which speaks for many) holds more than its share, so one client cannot take them all.
"""

from __future__ import annotations

import logging
import resource
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream

from gateway.clients import Network, is_trusted

log = logging.getLogger("gateway.server")

ACCEPTS_PER_WAKEUP = 128
PAUSE_SECONDS = 0.1  # accepting rests this long when descriptors run out
SPARE_DESCRIPTORS = 256  # kept for the database, providers, files and probes


def raise_file_limit() -> int:
    """Lift the soft limit on open files to the hard one; returns the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = 1_048_576 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return soft


def _peer(address: Any) -> str:
    """The peer's IP address, as accept() gives it ("" for a Unix socket)."""
    return str(address[0]) if isinstance(address, tuple) and address else ""


class GuardedHTTPServer(HTTPServer):
    """An HTTPServer with a connection cap and an accept loop that rests on EMFILE."""

    def initialize(
        self,
        *args: Any,
        max_connections: int = 1000,
        per_client: int = 256,
        proxies: tuple[Network, ...] = (),
        **kwargs: Any,
    ) -> None:
        super().initialize(*args, **kwargs)
        self.max_connections = max_connections
        self.per_client = per_client
        self.proxies = proxies
        self.refused = 0  # connections closed at once for being past a cap
        self._open: Counter[str] = Counter()  # connections open per peer address
        self._last_warning = 0.0

    def handle_stream(self, stream: IOStream, address: Any) -> None:
        peer = _peer(address)
        stream.gateway_peer = peer  # type: ignore[attr-defined]
        self._open[peer] += 1
        super().handle_stream(stream, address)

    def on_close(self, server_conn: Any) -> None:
        super().on_close(server_conn)
        peer = getattr(server_conn.stream, "gateway_peer", None)
        if peer is not None:
            self._open[peer] -= 1
            if self._open[peer] <= 0:
                del self._open[peer]

    def _over_share(self, address: Any) -> bool:
        peer = _peer(address)
        return self._open[peer] >= self.per_client and not is_trusted(peer, self.proxies)

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = self._accept_from(sock)

    def _accept_from(self, sock: socket.socket) -> Callable[[], None]:
        loop = IOLoop.current()

        def accept(fd: Any, events: int) -> None:
            for _ in range(ACCEPTS_PER_WAKEUP):
                if sock.fileno() < 0:
                    return  # stopped meanwhile
                try:
                    connection, address = sock.accept()
                except BlockingIOError:
                    return
                except ConnectionAbortedError:
                    continue
                except OSError as exc:  # EMFILE, ENFILE, ENOBUFS: rest, then go on
                    self._warn(f"cannot accept connections: {exc.strerror}; pausing")
                    loop.remove_handler(sock)
                    loop.call_later(PAUSE_SECONDS, lambda: _resume(sock))
                    return
                if len(self._connections) >= self.max_connections:
                    self.refused += 1
                    connection.close()
                    self._warn(f"{self.max_connections} connections open: refusing more")
                    continue
                if self._over_share(address):
                    self.refused += 1
                    connection.close()
                    self._warn(f"a client holds {self.per_client} connections: refusing more")
                    continue
                self._handle_connection(connection, address)

        def _resume(sock: socket.socket) -> None:
            if sock.fileno() >= 0 and sock.fileno() in self._sockets:
                loop.add_handler(sock, accept, IOLoop.READ)

        loop.add_handler(sock, accept, IOLoop.READ)
        return lambda: loop.remove_handler(sock)

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= 1.0:  # a flood must not flood the log too
            self._last_warning = now
            log.warning(message)
