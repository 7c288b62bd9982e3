"""WhatsApp through Twilio: signed webhooks in, the Messages API out.

Twilio signs every webhook over the URL it called, so behind a proxy the
signature is checked against ``PUBLIC_URL`` + path, not the address we see.
The twilio library (and aiohttp) load only when a WhatsApp channel is built.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from channels.base import (
    Channel,
    ChannelContext,
    ChannelMisconfigured,
    ChannelRecord,
    Download,
    Finding,
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
from channels.media import MB, Attachment, Location, Media, MediaFile, MediaRules, media_type

CONTENT_API = "https://content.twilio.com"
TWILIO_API = "https://api.twilio.com"
PREFIX = "whatsapp:"
FORM_BODY = 64 * 1024  # a Body of 4,096 characters, percent-encoded, and the rest
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
    # Twilio's Content API, where the approved templates are listed.
    content_api_base: str = CONTENT_API


class WhatsAppChannel(Channel):
    type = "whatsapp"
    Settings = WhatsAppSettings
    required = ("account_sid", "auth_token", "from_number")
    secrets = ("auth_token",)
    # https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource
    max_text = 1600  # Body
    # https://www.twilio.com/docs/whatsapp/tutorial/send-whatsapp-notification-messages-templates
    reply_window = timedelta(hours=24)
    # https://www.twilio.com/docs/content/send-templates-created-with-the-content-editor
    sends_templates = True

    def __init__(self, record: ChannelRecord, settings: WhatsAppSettings, context: ChannelContext):
        super().__init__(record, settings, context)
        from twilio.request_validator import RequestValidator
        from twilio.rest import Client

        from channels.twilio_http import TwilioHttpClient

        self.validator = RequestValidator(settings.auth_token)
        self.http = TwilioHttpClient(settings.api_base, TWILIO_API, context.connections)
        self.client = Client(settings.account_sid, settings.auth_token, http_client=self.http)
        self._templates: tuple[float, list[dict[str, Any]]] | None = None  # (until, list)

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
        text = check_text(form.get("Body", ""), "Body", 4096)
        kind: str | None = None
        media: tuple[Media, ...] = ()
        count = form.get("NumMedia", "0")
        number = min(int(count), 10) if count.isascii() and count.isdigit() else 0
        if number:
            media = tuple(_media(form, i, text) for i in range(number) if f"MediaUrl{i}" in form)
            kind = media[0].kind if media else "other"
            text = f"[{'media' if kind == 'other' else kind}] {text}".strip()
        elif "Latitude" in form and "Longitude" in form:
            latitude, longitude = _degrees(form["Latitude"]), _degrees(form["Longitude"])
            text = f"[location {form['Latitude']}, {form['Longitude']}]"
            kind, media = "location", (Location(latitude, longitude),)
        if not text:
            text = "[empty message]"
        message = Inbound(
            contact_external_id=sender.removeprefix(PREFIX),
            dedupe_key=sid,
            text=text,
            name=form.get("ProfileName", ""),
            external_id=sid,
            kind=kind,
            media=media,
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

    # Twilio's webhooks are a few kilobytes of form fields, ten media at most.
    webhook_routes = (
        WebhookRoute("", parse_webhook, max_body=FORM_BODY),
        WebhookRoute("status/", parse_status, max_body=FORM_BODY),
    )

    async def send(self, to: str, text: str, message_id: str) -> str:
        return await self._create(to, message_id, body=text)

    # https://www.twilio.com/docs/whatsapp/guidance-whatsapp-media-messages: 16 MB a
    # message, images 5 MB, these types. Twilio fetches the file from a URL.
    media = MediaRules(
        {"image": 5 * MB, "audio": 16 * MB, "video": 16 * MB, "document": 16 * MB},
        types=frozenset({
            "image/jpeg", "image/png", "image/webp",
            "audio/ogg", "audio/amr", "audio/3gpp", "audio/aac", "audio/mpeg",
            "video/mp4", "video/3gpp", "application/pdf", "text/vcard",
            "application/msword",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }),
        max_caption=1600,
        fetches_uploads=True,
        name="WhatsApp",
    )  # fmt: skip

    async def send_media(
        self, to: str, attachment: Attachment, caption: str, message_id: str
    ) -> str:
        if not attachment.url:  # checked before the message was taken; config changed
            raise ChannelMisconfigured("Twilio fetches uploads from server.public_url: unset")
        content = {"media_url": [attachment.url], **({"body": caption} if caption else {})}
        return await self._create(to, message_id, **content)

    async def send_template(self, to: str, template: Mapping[str, Any], message_id: str) -> str:
        variables = json.dumps(template.get("variables") or {}, ensure_ascii=False)
        return await self._create(
            to, message_id, content_sid=template["content_sid"], content_variables=variables
        )

    async def _create(self, to: str, message_id: str, **content: Any) -> str:
        import aiohttp  # loaded with the client in __init__: a lookup, not an import
        from twilio.base.exceptions import TwilioRestException

        callback = None
        if self.context.public_url:
            callback = self.webhook_url("status/") + "?" + urlencode({"message_id": message_id})
        try:
            message = await self.client.messages.create_async(
                from_=PREFIX + self.settings.from_number.removeprefix(PREFIX),
                to=PREFIX + to,
                status_callback=callback,
                **content,
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

    async def diagnose(self) -> list[Finding]:
        """The account SID and auth token, by fetching the account with them."""
        from twilio.base.exceptions import TwilioRestException

        sid = self.settings.account_sid
        try:
            account = await self.client.api.v2010.accounts(sid).fetch_async()
        except TwilioRestException as exc:
            if exc.status in (401, 403):
                refused = (f"Twilio refused them ({exc.status}): check TWILIO_ACCOUNT_SID and "
                           "TWILIO_AUTH_TOKEN (channels[].account_sid, auth_token)")  # fmt: skip
                return [Finding(False, "credentials", refused)]
            return [Finding(False, "credentials", f"Twilio answered {exc.status}: {exc.msg}")]
        except Exception as exc:  # no answer
            return [Finding(False, "credentials", f"Twilio did not answer ({type(exc).__name__}):"
                            " is api.twilio.com reachable from here?")]  # fmt: skip
        active = account.status == "active"
        shown = f"accepted: account {account.friendly_name!r} is {account.status}"
        return [Finding(active, "credentials", shown if active else shown + ": reactivate it")]

    async def close(self) -> None:
        await self.http.close()

    async def open_media(self, ref: str, max_bytes: int) -> Download:
        auth = (self.settings.account_sid, self.settings.auth_token)
        return await self.http.open_media(ref, auth, max_bytes)

    async def list_templates(self) -> list[dict[str, Any]]:
        # Kept briefly: agents open the picker often, and approvals change in hours.
        if self._templates is not None and time.monotonic() < self._templates[0]:
            return self._templates[1]
        listed = await self._fetch_templates()
        self._templates = (time.monotonic() + TEMPLATES_SECONDS, listed)
        return listed

    async def _fetch_templates(self) -> list[dict[str, Any]]:
        # https://www.twilio.com/docs/content/content-api-resources#fetch-all-content-and-approvals
        auth = (self.settings.account_sid, self.settings.auth_token)
        url = self.settings.content_api_base.rstrip("/") + "/v1/ContentAndApprovals?PageSize=100"
        listed = []
        for page in range(MAX_TEMPLATE_PAGES):
            answer = await self.http.get_json(url, auth, self.settings.content_api_base)
            for content in answer.get("contents") or []:
                listed.append(_template(content))
            url = (answer.get("meta") or {}).get("next_page_url") or ""
            if not url or page + 1 == MAX_TEMPLATE_PAGES:
                break
        return listed


# What a media's content type shows it as (https://www.twilio.com/docs/whatsapp/guidance-whatsapp-media-messages).
KINDS = {"image": "image", "audio": "audio", "video": "video", "application": "document",
         "text": "document"}  # fmt: skip


def _media(form: Mapping[str, str], index: int, caption: str) -> MediaFile:
    """The ``index``th media of a message; ``ref`` is its URL, fetched with the
    account's credentials. Twilio says its size only when the file is fetched."""
    mime_type = media_type(form.get(f"MediaContentType{index}"))
    kind = KINDS.get((mime_type or "").split("/")[0], "other")
    url = form[f"MediaUrl{index}"][:2048]
    return MediaFile(kind, url, mime_type=mime_type, caption=caption or None)


def _degrees(value: str) -> float:
    try:
        degrees = float(value)
    except ValueError:
        degrees = math.nan
    if not math.isfinite(degrees):
        raise WebhookRefused(400, "Latitude and Longitude must be numbers")
    return degrees


TEMPLATES_SECONDS = 60
MAX_TEMPLATE_PAGES = 10  # 1,000 templates: more than any account has approved


def _template(content: dict[str, Any]) -> dict[str, Any]:
    """A Content API entry as agents see it: what to send it with, and its state."""
    approval = (content.get("approval_requests") or {}).get("status") or "unsubmitted"
    return {
        "content_sid": str(content.get("sid", "")),
        "name": str(content.get("friendly_name", "")),
        "language": str(content.get("language", "")),
        "variables": dict(content.get("variables") or {}),
        "types": sorted(content.get("types") or {}),
        "whatsapp_status": str(approval),  # approved, pending, rejected, unsubmitted
    }
