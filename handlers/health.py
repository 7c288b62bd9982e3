"""Liveness and readiness probes for orchestrators and load balancers."""

from __future__ import annotations

from handlers.base import BaseHandler, public
from storage.errors import StorageUnavailable


@public("orchestrators probe without credentials")
class HealthHandler(BaseHandler):
    """``/healthz``: the process is up and its event loop answers."""

    async def get(self) -> None:
        """Liveness.
        ---
        summary: The process is up
        tags: [ops]
        security: []
        responses:
          200: {description: 'Always {"status": "ok"} while the process runs'}
        """
        self.write_json({"status": "ok"})


@public("orchestrators probe without credentials")
class ReadyHandler(BaseHandler):
    """``/readyz``: the database answers a ping and no background worker keeps failing."""

    async def get(self) -> None:
        """Readiness.
        ---
        summary: The database answers, so requests can be served
        tags: [ops]
        security: []
        responses:
          200: {description: '{"status": "ready"}'}
          503:
            description: Not ready; the message says why
            content: {application/json: {schema: Error}}
        """
        try:
            await self.services.storage.ping()
        except StorageUnavailable as exc:
            self.send_error_body(503, "unavailable", str(exc))
            return
        down = self.services.supervisor.down()
        if down:
            message = f"background workers failing: {', '.join(down)}"
            self.send_error_body(503, "unavailable", message)
            return
        self.write_json({"status": "ready"})


routes = [
    (r"/healthz", HealthHandler),
    (r"/readyz", ReadyHandler),
]
