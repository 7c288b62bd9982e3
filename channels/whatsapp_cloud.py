"""WhatsApp through Meta's Cloud API: signed webhooks in, the Graph API out.

Meta verifies the webhook URL once with a GET challenge, then signs every POST
with the app secret (X-Hub-Signature-256 over the raw body). Statuses name our
message by ``biz_opaque_callback_data``, which every send sets to our id.
https://developers.facebook.com/docs/whatsapp/cloud-api/guides/set-up-webhooks
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from channels.base import (
    Channel,
    ChannelContext,
    ChannelMisconfigured,
    ChannelRecord,
    Inbound,
    NetworkFailure,
    ProviderError,
    SendError,
    StatusReport,
    Throttled,
    Undeliverable,
    WebhookRefused,
    WebhookReply,
    WebhookRequest,
    WebhookResult,
    WebhookRoute,
    check_text,
    load_json,
    log,
    secrets_match,
)

GRAPH_API = "https://graph.facebook.com"
SIGNATURE_HEADER = "X-Hub-Signature-256"
# https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components (statuses)
STATUSES = {"sent": "sent", "delivered": "delivered", "read": "read", "failed": "failed"}
MAX_CHALLENGE = 256
# https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes/
THROTTLED = {4, 80007, 130429, 131056}  # app, account, throughput, pair rate limits
MISCONFIGURED = {0, 3, 10, 190, 131031, 133010} | set(range(200, 300))  # token, permission
TRANSIENT = {1, 2, 131000, 131016}  # unknown, service unavailable, something went wrong
MEDIA = ("image", "audio", "video", "document", "sticker")


@dataclass(frozen=True)
class WhatsAppCloudSettings:
    access_token: str = ""  # a system user's token, sent as a bearer token
    phone_number_id: str = ""  # the sender's id in the Graph API, not its number
    app_secret: str = ""  # signs each webhook
    verify_token: str = ""  # what we asked Meta to echo in the GET verification
    api_base: str = GRAPH_API
    api_version: str = "v21.0"


class WhatsAppCloudChannel(Channel):
    type = "whatsapp_cloud"
    Settings = WhatsAppCloudSettings
    required = ("access_token", "phone_number_id", "app_secret", "verify_token")
    secrets = ("access_token", "app_secret", "verify_token")
    max_text = 4096  # text.body
    # https://developers.facebook.com/docs/whatsapp/pricing#customer-service-windows
    reply_window = timedelta(hours=24)

    def __init__(
        self, record: ChannelRecord, settings: WhatsAppCloudSettings, context: ChannelContext
    ) -> None:
        super().__init__(record, settings, context)
        from tornado.httpclient import AsyncHTTPClient

        self.http = AsyncHTTPClient()  # shared by the IOLoop, closed with it: no close()

    # -- inbound ------------------------------------------------------------------

    async def verify(self, request: WebhookRequest) -> WebhookResult:
        query = request.query
        if query.get("hub.mode") != "subscribe" or not secrets_match(
            self.settings.verify_token, query.get("hub.verify_token")
        ):
            raise WebhookRefused(403, "hub.mode must be subscribe, with our hub.verify_token")
        challenge = query.get("hub.challenge", "")
        if not challenge or len(challenge) > MAX_CHALLENGE or not challenge.isprintable():
            raise WebhookRefused(
                400, f"hub.challenge: required, at most {MAX_CHALLENGE} characters"
            )
        return WebhookResult(reply=WebhookReply(challenge, "text/plain"))

    async def parse_webhook(self, request: WebhookRequest) -> WebhookResult:
        expected = (
            "sha256="
            + hmac.new(self.settings.app_secret.encode(), request.body, hashlib.sha256).hexdigest()
        )
        if not secrets_match(expected, request.headers.get(SIGNATURE_HEADER)):
            raise WebhookRefused(403, f"missing or invalid {SIGNATURE_HEADER}")
        try:
            data = load_json(request.body)
            return self._read(data)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise WebhookRefused(400, f"not a WhatsApp Cloud API webhook: {exc}") from None

    webhook_routes = (
        WebhookRoute("", parse_webhook, ("POST",)),
        WebhookRoute("", verify, ("GET",)),
    )

    def _read(self, data: Any) -> WebhookResult:
        if not isinstance(data, dict) or data.get("object") != "whatsapp_business_account":
            raise ValueError("object: must be whatsapp_business_account")
        messages: list[Inbound] = []
        statuses: list[StatusReport] = []
        for entry in _list(data, "entry"):
            for change in _list(entry, "changes"):
                value = change["value"]
                if change.get("field") != "messages" or not isinstance(value, dict):
                    continue  # account updates, template reviews: nothing to store
                # One app may serve several numbers; each channel takes its own.
                metadata = value.get("metadata") or {}
                if str(metadata.get("phone_number_id", "")) != self.settings.phone_number_id:
                    continue
                names = {
                    str(c.get("wa_id", "")): str((c.get("profile") or {}).get("name", ""))
                    for c in _list(value, "contacts")
                }
                messages += [_inbound(m, names) for m in _list(value, "messages")]
                statuses += [s for s in map(_status, _list(value, "statuses")) if s]
        return WebhookResult(messages=messages, statuses=statuses)

    # -- outbound -----------------------------------------------------------------

    async def send(self, to: str, text: str, message_id: str) -> str:
        from tornado.httpclient import HTTPClientError, HTTPRequest

        if not to.isdigit():
            raise Undeliverable(f"not a WhatsApp id (digits of a phone number): {to!r}")
        # https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages
        settings = self.settings
        base = f"{settings.api_base.rstrip('/')}/{settings.api_version}"
        url = f"{base}/{settings.phone_number_id}/messages"
        body = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"body": text, "preview_url": False},
            "biz_opaque_callback_data": message_id,  # names the message in its statuses
        }
        request = HTTPRequest(
            url,
            method="POST",
            headers={
                "Authorization": f"Bearer {settings.access_token}",
                "Content-Type": "application/json",
            },
            body=json.dumps(body),
            connect_timeout=10,
            request_timeout=30,
        )
        try:
            response = await self.http.fetch(request, raise_error=False)
        except (HTTPClientError, OSError) as exc:  # refused, reset, timed out
            raise NetworkFailure(f"Graph API unreachable: {type(exc).__name__}") from None
        try:
            answer = json.loads(response.body or b"{}")
        except ValueError:
            answer = None
        if response.code >= 300 or not isinstance(answer, dict):
            raise _send_error(response.code, answer)
        try:
            return str(answer["messages"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise ProviderError("the Graph API answered without a message id") from None


def _list(obj: Any, key: str) -> list[Any]:
    value = obj.get(key, []) if isinstance(obj, dict) else None
    if not isinstance(value, list):
        raise ValueError(f"{key}: must be a list")
    return value


def _inbound(message: Any, names: dict[str, str]) -> Inbound:
    sender, wamid, kind = str(message["from"]), str(message["id"]), str(message.get("type", ""))
    extra: dict[str, Any] = {"kind": kind}
    body = message.get(kind) if isinstance(message.get(kind), dict) else {}
    if kind == "text":
        text, extra = check_text(str(body.get("body", "")), "text.body", 4096), {}
    elif kind in MEDIA:
        caption = check_text(str(body.get("caption", "")), "caption", 1024)
        text, extra["media_id"] = f"[{kind}] {caption}".strip(), str(body.get("id", ""))
    elif kind == "location":
        text = f"[location {body.get('latitude')}, {body.get('longitude')}]"
    elif kind == "button":  # a quick reply to a template
        text = str(body.get("text", "")) or "[button]"
    elif kind == "interactive":  # a reply button or a list row
        reply = body.get("button_reply") or body.get("list_reply") or {}
        text = str(reply.get("title", "")) or "[interactive]"
    else:  # reactions, contacts, orders, unsupported: their type, for the agent to see
        text = f"[{kind or 'unknown'}]"
        log.info("whatsapp_cloud: message %s of type %r stored by its type only", wamid, kind)
    return Inbound(
        contact_external_id=sender,
        dedupe_key=wamid,
        text=text or "[empty message]",
        name=names.get(sender, ""),
        external_id=wamid,
        extra=extra,
    )


def _status(status: Any) -> StatusReport | None:
    ours = str(status.get("biz_opaque_callback_data", ""))
    state = STATUSES.get(str(status.get("status", "")))
    if not ours or state is None:
        return None  # not sent by us (the WhatsApp app, another tool), or nothing new
    error = None
    if state == "failed":
        first = (status.get("errors") or [{}])[0]
        error = f"{first.get('code', '')}: {first.get('title') or first.get('message') or 'failed'}"
    return StatusReport(ours, state, error, str(status.get("id", "")))


def _send_error(http_status: int, answer: Any) -> SendError:
    """The Graph API's error, as a send error that says whether to retry."""
    error = answer.get("error", {}) if isinstance(answer, dict) else {}
    code = error.get("code") if isinstance(error, dict) else None
    message = str(error.get("message", "")) if isinstance(error, dict) else ""
    message = message or f"the Graph API answered {http_status}"
    label = str(code if code is not None else http_status)
    if code in THROTTLED or http_status == 429:
        return Throttled(message, label)
    if code in MISCONFIGURED or http_status in (401, 403):
        return ChannelMisconfigured(message, label)
    if code in TRANSIENT or http_status >= 500:
        return NetworkFailure(message, label)
    return Undeliverable(message, label)  # 131026 undeliverable, 131047 outside 24 h, 100
