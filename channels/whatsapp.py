"""WhatsApp through Twilio: signed webhooks in, the Messages API out.

Twilio signs every webhook over the URL it called, so behind a proxy the
signature is checked against ``PUBLIC_URL`` + path, not the address we see.
The twilio library (and aiohttp) load only when a WhatsApp channel is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from channels.base import (
    Channel,
    ChannelContext,
    ChannelMisconfigured,
    ChannelRecord,
    Inbound,
    NetworkFailure,
    StatusReport,
    Throttled,
    Undeliverable,
    WebhookRefused,
    WebhookReply,
    WebhookRequest,
    WebhookResult,
    WebhookRoute,
    check_text,
)

TWILIO_API = "https://api.twilio.com"
PREFIX = "whatsapp:"
# https://www.twilio.com/docs/messaging/api/message-resource#message-status-values
STATUSES = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
    "undelivered": "failed",
}


# https://www.twilio.com/docs/messaging/twiml: an empty Response sends nothing back.
TWIML_EMPTY = WebhookReply(
    '<?xml version="1.0" encoding="UTF-8"?><Response></Response>', "text/xml"
)


@dataclass(frozen=True)
class WhatsAppSettings:
    account_sid: str = ""
    auth_token: str = ""
    from_number: str = ""  # the WhatsApp sender, e.g. +14155238886
    api_base: str = TWILIO_API


class WhatsAppChannel(Channel):
    type = "whatsapp"
    Settings = WhatsAppSettings
    required = ("account_sid", "auth_token", "from_number")
    secrets = ("auth_token",)
    # https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource
    max_text = 1600  # Body

    def __init__(self, record: ChannelRecord, settings: WhatsAppSettings, context: ChannelContext):
        super().__init__(record, settings, context)
        from twilio.request_validator import RequestValidator
        from twilio.rest import Client

        from channels.twilio_http import TwilioHttpClient

        self.validator = RequestValidator(settings.auth_token)
        self.http = TwilioHttpClient(settings.api_base)
        self.client = Client(settings.account_sid, settings.auth_token, http_client=self.http)

    def _verify(self, request: WebhookRequest) -> None:
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature or not self.validator.validate(request.url, dict(request.form), signature):
            raise WebhookRefused(403, "missing or invalid X-Twilio-Signature")

    async def parse_webhook(self, request: WebhookRequest) -> WebhookResult:
        self._verify(request)
        form = request.form
        sid, sender = form.get("MessageSid", ""), form.get("From", "")
        if not sid or not sender:
            raise WebhookRefused(400, "MessageSid and From are required")
        # https://www.twilio.com/docs/messaging/guides/webhook-request: at most 10 media
        text, extra = check_text(form.get("Body", ""), "Body", 4096), {}
        count = form.get("NumMedia", "0")
        media = min(int(count), 10) if count.isascii() and count.isdigit() else 0
        if media:
            kind = form.get("MediaContentType0", "media").split("/")[0]
            urls = [form[f"MediaUrl{i}"] for i in range(media) if f"MediaUrl{i}" in form]
            text = f"[{kind}] {text}".strip()
            extra = {"kind": kind, "media_urls": urls}
        elif "Latitude" in form and "Longitude" in form:
            text = f"[location {form['Latitude']}, {form['Longitude']}]"
            extra = {"kind": "location"}
        if not text:
            text = "[empty message]"
        message = Inbound(
            contact_external_id=sender.removeprefix(PREFIX),
            dedupe_key=sid,
            text=text,
            name=form.get("ProfileName", ""),
            external_id=sid,
            extra=extra,
        )
        return WebhookResult(messages=[message], reply=TWIML_EMPTY)

    async def parse_status(self, request: WebhookRequest) -> WebhookResult:
        self._verify(request)
        form = request.form
        message_id = request.query.get("message_id", "")  # our callback URL names it
        status = STATUSES.get(form.get("MessageStatus", ""))
        if not message_id or status is None:
            return WebhookResult(reply=TWIML_EMPTY)  # queued/sending: nothing new
        error = None
        if status == "failed":
            error = f"{form.get('ErrorCode', '')}: {form.get('ErrorMessage', '') or 'undelivered'}"
        report = StatusReport(message_id, status, error, form.get("MessageSid", ""))
        return WebhookResult(statuses=[report], reply=TWIML_EMPTY)

    webhook_routes = (WebhookRoute("", parse_webhook), WebhookRoute("status/", parse_status))

    async def send(self, to: str, text: str, message_id: str) -> str:
        import aiohttp  # loaded with the client in __init__: a lookup, not an import
        from twilio.base.exceptions import TwilioRestException

        callback = None
        if self.context.public_url:
            callback = self.webhook_url("status/") + "?" + urlencode({"message_id": message_id})
        try:
            message = await self.client.messages.create_async(
                from_=PREFIX + self.settings.from_number.removeprefix(PREFIX),
                to=PREFIX + to,
                body=text,
                status_callback=callback,
            )
        except TwilioRestException as exc:
            code = str(exc.code or exc.status)
            if exc.status == 429:
                raise Throttled(exc.msg, code) from None
            if exc.status >= 500:
                raise NetworkFailure(exc.msg, code) from None
            if exc.status in (401, 403):
                raise ChannelMisconfigured(exc.msg, code) from None
            raise Undeliverable(exc.msg, code) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise NetworkFailure(f"Twilio unreachable: {type(exc).__name__}") from None
        return str(message.sid)

    async def close(self) -> None:
        await self.http.close()
