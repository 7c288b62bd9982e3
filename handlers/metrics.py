"""Prometheus metrics at /metrics, for a bearer token or for local scrapes."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from common.wire import secrets_match
from gateway.errors import Forbidden, Unauthorized
from handlers.base import BaseHandler, public
from storage.records import utcnow


@public("checks its own bearer token (metrics.token), or lets in only this machine's clients")
class MetricsHandler(BaseHandler):
    async def get(self) -> None:
        """Prometheus metrics.
        ---
        summary: Metrics in the Prometheus text format
        description: >-
          Send metrics.token (METRICS_TOKEN) as a bearer token; without one
          configured, only clients on this machine may scrape.
        tags: [ops]
        security: []
        responses:
          200: {description: The metrics, content: {text/plain: {schema: {type: string}}}}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
        """
        token = self.services.config.metrics.token
        if token:
            if not secrets_match(token, self.given_bearer):
                raise Unauthorized("send the metrics token as Authorization: Bearer <token>")
        elif not self.from_this_machine:
            raise Forbidden("set metrics.token (METRICS_TOKEN) to scrape from another host")
        channel_ids = [channel.id for channel in self.services.channels]
        metrics = self.services.metrics
        metrics.outbox_depth.set(await self.services.storage.outbox.depth(channel_ids))
        metrics.backlog = await self._backlog()
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(self.services.metrics.registry))

    async def _backlog(self) -> list[tuple[str, int, int, float]]:
        """The conversations' backlog now, per channel by name (gateway/runtime.py
        shows it): a channel with nothing open has no row."""
        now = utcnow()
        names = {channel.id: channel.name for channel in self.services.channels}
        return [
            (
                names.get(row.channel_id, row.channel_id),
                row.open,
                row.waiting,
                max(0.0, (now - row.since).total_seconds()) if row.since else 0.0,
            )
            for row in await self.services.storage.conversations.backlog()
        ]


routes = [(r"/metrics", MetricsHandler)]
