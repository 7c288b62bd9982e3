"""Liveness and readiness probes for orchestrators and load balancers."""

from __future__ import annotations

from handlers.base import BaseHandler
from storage.errors import StorageUnavailable


class HealthHandler(BaseHandler):
    """``/healthz``: the process is up and its event loop answers."""

    async def get(self) -> None:
        self.write_json({"status": "ok"})


class ReadyHandler(BaseHandler):
    """``/readyz``: the database answers a ping, so requests can be served."""

    async def get(self) -> None:
        try:
            await self.services.storage.ping()
        except StorageUnavailable as exc:
            self.send_error_body(503, "unavailable", str(exc))
            return
        self.write_json({"status": "ready"})


routes = [
    (r"/healthz", HealthHandler),
    (r"/readyz", ReadyHandler),
]
