"""Webhooks: providers deliver messages and status reports here.

Each channel declares its routes under ``/webhooks/<type>/<channel>/`` and verifies
its own calls (secret header, signature). The answer is 2xx only once what came in
is stored; if the database cannot store it, 503 so the provider retries.
"""

from __future__ import annotations

import functools
from typing import ClassVar

from channels.base import Channel, WebhookRefused, WebhookRequest, WebhookRoute
from gateway.clients import from_loopback
from gateway.errors import MethodNotAllowed, NotFound, error_for
from handlers.base import BaseHandler, public


@public("providers cannot hold our tokens; each channel verifies its own secret or signature")
class WebhookHandler(BaseHandler):
    # Described once for both methods; the docs add them to each (handlers/docs.py).
    path_parameters: ClassVar[dict[str, str]] = {
        "channel_type": "The channel's type; the schema lists them from the registry",
        "channel": "The channel's name or id",
        "suffix": "Empty for messages; the schema lists the others from the registry",
    }

    async def post(self, channel_type: str, channel: str, suffix: str) -> None:
        """Receive a provider's webhook.
        ---
        summary: A provider's webhook (Telegram, WhatsApp by Twilio or Cloud API, Mock)
        description: >-
          Telegram sends X-Telegram-Bot-Api-Secret-Token, Twilio signs with
          X-Twilio-Signature, Meta with X-Hub-Signature-256, the Mock channel takes
          X-Mock-Secret. A call that fails verification stores nothing.
        tags: [webhooks]
        security: []
        requestBody:
          required: true
          content:
            application/json: {schema: {type: object}}
            application/x-www-form-urlencoded: {schema: {type: object}}
        responses:
          200: {description: Stored (or a repeat of something already stored)}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
          404: {$ref: "#/components/responses/NotFound"}
          503: {description: The database is unavailable; the provider should retry}
        """
        await self._receive("POST", channel_type, channel, suffix)

    async def get(self, channel_type: str, channel: str, suffix: str) -> None:
        """A provider's verification handshake, for the channels whose provider asks one.
        ---
        summary: A provider's webhook verification (a GET with a challenge)
        tags: [webhooks]
        security: []
        responses:
          200: {description: The challenge echoed back as the provider asks}
          403: {$ref: "#/components/responses/Forbidden"}
          404: {$ref: "#/components/responses/NotFound"}
          405: {$ref: "#/components/responses/MethodNotAllowed"}
        """
        await self._receive("GET", channel_type, channel, suffix)

    @functools.cached_property
    def _target(self) -> tuple[Channel | None, list[WebhookRoute]]:
        """The channel the path names and its routes at the path's suffix: found once
        per request, for the body's cap and for the call."""
        kwargs = self.path_kwargs
        found = self.services.channels.find(kwargs["channel_type"], kwargs["channel"])
        routes = [r for r in found.webhook_routes if r.suffix == kwargs["suffix"]] if found else []
        return found, routes

    @property
    def max_body(self) -> int:
        # A provider's own limit, checked with the headers: no forged megabyte is read.
        limits = [r.max_body for r in self._target[1] if r.max_body is not None]
        return min([super().max_body, *limits])

    async def _receive(self, method: str, channel_type: str, channel: str, suffix: str) -> None:
        found, routes = self._target
        if found is None or not routes:
            raise NotFound(f"No such webhook: {self.request.path}")
        route = next((r for r in routes if method in r.methods), None)
        if route is None:
            allowed = sorted({m for r in routes for m in r.methods})
            raise MethodNotAllowed(f"{self.request.path} takes {', '.join(allowed)}", allowed)
        request = WebhookRequest(
            url=self._called_url(),
            headers=self.request.headers,
            body=self.body,
            query={
                k: v[-1].decode("utf-8", "replace") for k, v in self.request.query_arguments.items()
            },
            from_loopback=from_loopback(self.request.remote_ip or "", self.request.headers),
        )
        try:
            result = await route.handle(found, request)
        except WebhookRefused as exc:
            outcome = "invalid" if exc.status == 400 else "refused"
            self.services.metrics.inbound.labels(found.name, outcome).inc()
            raise error_for(exc.status, exc.message) from None
        await self.services.inbox.accept(found, result)  # raises what was not stored
        reply = result.reply
        self.set_status(reply.status)
        self.set_header("Content-Type", f"{reply.content_type}; charset=utf-8")
        self.finish(reply.body)

    def _called_url(self) -> str:
        # Signatures cover the URL the provider called: behind a proxy, the public one.
        public_url = self.services.config.server.public_url
        if public_url:
            return public_url.rstrip("/") + self.request.uri
        return self.request.full_url()


routes = [
    (
        r"/webhooks/(?P<channel_type>[a-z_]+)/(?P<channel>[^/]+)/(?P<suffix>(?:[a-z_-]+/)?)",
        WebhookHandler,
    ),
]
