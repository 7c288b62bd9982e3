"""Webhooks: providers deliver messages and delivery news here.

Each channel declares its routes under ``/webhooks/<type>/<channel>/`` and verifies
its own calls (secret header, signature). The answer is 2xx only once what came in
is stored; if the database cannot store it, 503 so the provider retries.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from channels.base import StatusReport, WebhookRefused, WebhookRequest
from gateway.errors import NotFound, error_for
from gateway.outbound import apply_statuses
from handlers.base import BaseHandler, public

FORM = "application/x-www-form-urlencoded"


@public("providers cannot hold our tokens; each channel verifies its own secret or signature")
class WebhookHandler(BaseHandler):
    async def post(self, channel_type: str, channel: str, suffix: str) -> None:
        """Receive a provider's webhook.
        ---
        summary: A provider's webhook (Telegram, Twilio WhatsApp, Mock)
        description: >-
          Telegram sends X-Telegram-Bot-Api-Secret-Token, Twilio signs with
          X-Twilio-Signature, the Mock channel takes X-Mock-Secret. A call that
          fails verification stores nothing.
        tags: [webhooks]
        security: []
        parameters:
          - in: path
            name: channel_type
            required: true
            description: The channel's type; the schema lists them from the registry
            schema: {type: string}
          - in: path
            name: channel
            required: true
            description: The channel's name or id
            schema: {type: string}
          - in: path
            name: suffix
            required: true
            description: Empty for messages; status/ for Twilio's delivery news
            schema: {type: string, enum: ["", "status/"]}
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
        found = self.services.channels.find(channel_type, channel)
        if found is None or suffix not in found.webhooks:
            raise NotFound(f"No such webhook: {self.request.path}")
        request = WebhookRequest(
            url=self._called_url(),
            headers=self.request.headers,
            body=self.body,
            form=self._form(),
        )
        try:
            items: list[Any] = await getattr(found, found.webhooks[suffix])(request)
        except WebhookRefused as exc:
            result = "invalid" if exc.status == 400 else "refused"
            self.services.metrics.inbound.labels(found.name, result).inc()
            raise error_for(exc.status, exc.message) from None
        if items and isinstance(items[0], StatusReport):
            await apply_statuses(self.services.storage, found, items)
        elif items:
            received = await self.services.receive(found, items)
            if received.failed:  # not stored, so not acknowledged
                raise received.failed[0]
        content_type, body = found.webhook_reply
        self.set_header("Content-Type", f"{content_type}; charset=utf-8")
        self.finish(body)

    def _called_url(self) -> str:
        # Signatures cover the URL the provider called: behind a proxy, the public one.
        public_url = self.services.config.server.public_url
        if public_url:
            return public_url.rstrip("/") + self.request.uri
        return self.request.full_url()

    def _form(self) -> dict[str, str]:
        content_type = self.request.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() != FORM:
            return {}
        return dict(parse_qsl(self.body.decode("utf-8", errors="replace"), keep_blank_values=True))


routes = [
    (
        r"/webhooks/(?P<channel_type>[a-z]+)/(?P<channel>[^/]+)/(?P<suffix>(?:status/)?)",
        WebhookHandler,
    ),
]
