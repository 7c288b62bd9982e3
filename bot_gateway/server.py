"""Running the gateway: listen, serve until SIGTERM/SIGINT, then shut down in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

from tornado.netutil import bind_sockets

from gateway.config import Config
from gateway.errors import GatewayError
from gateway.listener import SPARE_DESCRIPTORS, GuardedHTTPServer, raise_file_limit
from gateway.runtime import Runtime
from handlers.app import make_app
from handlers.events import event_json

log = logging.getLogger("gateway.server")


async def serve(config: Config, ready: asyncio.Event | None = None) -> None:
    """Serve until a termination signal, then stop gracefully within the grace period."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    files = raise_file_limit()
    cap = min(config.server.max_connections, max(64, files - SPARE_DESCRIPTORS))
    runtime = await Runtime.open(config, present_event=event_json)
    services = runtime.services
    app = make_app(services)
    server = GuardedHTTPServer(
        app,
        max_connections=cap,
        per_client=config.server.max_connections_per_client,
        proxies=config.server.proxies,
        # A connection must send its headers within this, and wait no longer idle.
        idle_connection_timeout=config.server.idle_timeout_seconds,
        body_timeout=config.server.body_timeout_seconds,
    )
    try:
        try:
            sockets = bind_sockets(config.server.port, config.server.host)
        except OSError as exc:  # the port is taken, or the address is not this machine's
            where = f"{config.server.host}:{config.server.port}"
            raise GatewayError(
                f"cannot listen on {where}: {exc.strerror}; stop what uses it, or choose "
                "another with --port (or --host)"
            ) from None
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        log.info("bot-gateway listening on http://%s:%d (at most %d connections)",
                 config.server.host, port, cap)  # fmt: skip
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("shutting down")
        deadline = time.monotonic() + config.server.shutdown_grace_seconds
        server.stop()  # no new connections
        try:  # let the requests in flight finish, within the grace period
            await asyncio.wait_for(services.inflight.wait_idle(), deadline - time.monotonic())
        except TimeoutError:
            log.warning("grace period over with %d requests in flight", services.inflight.count)
        with contextlib.suppress(TimeoutError):  # idle keep-alive connections
            await asyncio.wait_for(server.close_all_connections(), 1.0)
    finally:
        await runtime.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("stopped")
