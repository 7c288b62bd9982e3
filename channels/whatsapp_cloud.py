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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from channels.base import (
    MAX_ID,
    MAX_NAME,
    Channel,
    ChannelContext,
    ChannelMisconfigured,
    ChannelRecord,
    Download,
    Finding,
    Inbound,
    MediaUnavailable,
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
    degrees,
    log,
)
from channels.media import MB, Attachment, Location, Media, MediaFile, MediaRules, media_type
from common.wire import load_json, secrets_match

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
MEDIA_HOSTS = ("lookaside.fbsbx.com",)  # where the Graph API's media URLs point


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
        from channels.http import provider_session

        self.http = provider_session(context.connections)  # channels/http.py

    async def close(self) -> None:
        await self.http.close()

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

    # https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#supported-media-types
    media = MediaRules(
        {"image": 5 * MB, "audio": 16 * MB, "video": 16 * MB, "document": 100 * MB},
        types=frozenset({
            "image/jpeg", "image/png",
            "audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg",
            "video/mp4", "video/3gpp", "text/plain", "application/pdf",
            "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }),
        max_caption=1024,
        fetches_uploads=True,  # sent by link: Meta fetches it
        name="WhatsApp",
    )  # fmt: skip

    async def send(self, to: str, text: str, message_id: str) -> str:
        return await self._post(
            to, message_id, {"type": "text", "text": {"body": text, "preview_url": False}}
        )

    async def send_media(
        self, to: str, attachment: Attachment, caption: str, message_id: str
    ) -> str:
        if not attachment.url:  # checked before the message was taken; config changed
            raise ChannelMisconfigured("Meta fetches uploads from server.public_url: unset")
        kind = attachment.kind
        media: dict[str, Any] = {"link": attachment.url}
        if caption and kind != "audio":  # audio takes no caption
            media["caption"] = caption
        if kind == "document" and attachment.file_name:
            media["filename"] = attachment.file_name
        return await self._post(to, message_id, {"type": kind, kind: media})

    async def _post(self, to: str, message_id: str, content: dict[str, Any]) -> str:
        from channels.http import FAILURES

        if not to.isdigit():
            raise Undeliverable(f"not a WhatsApp id (digits of a phone number): {to!r}")
        # https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages
        url = f"{self._graph}/{self.settings.phone_number_id}/messages"
        body = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            **content,
            "biz_opaque_callback_data": message_id,  # names the message in its statuses
        }
        try:
            async with self.http.post(url, headers=self._bearer, json=body) as response:
                status, raw = response.status, await response.read()
        except FAILURES as exc:  # refused, reset, timed out
            raise NetworkFailure(f"Graph API unreachable: {type(exc).__name__}") from None
        try:
            answer = json.loads(raw or b"{}")
        except ValueError:
            answer = None
        if status >= 300 or not isinstance(answer, dict):
            raise _send_error(status, answer)
        try:
            return str(answer["messages"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise ProviderError("the Graph API answered without a message id") from None

    async def diagnose(self) -> list[Finding]:
        """The access token and the phone number id, by reading the number with them:
        https://developers.facebook.com/docs/graph-api/reference/whatsapp-business-phone-number/"""
        from channels.http import FAILURES

        url = f"{self._graph}/{self.settings.phone_number_id}"
        query = {"fields": "display_phone_number,verified_name,quality_rating"}
        try:
            async with self.http.get(url, headers=self._bearer, params=query) as response:
                status, raw = response.status, await response.read()
        except FAILURES as exc:
            failed = type(exc).__name__
            return [Finding(False, "credentials", f"the Graph API did not answer ({failed}): "
                            "is graph.facebook.com reachable from here?")]  # fmt: skip
        if status == 401:
            return [Finding(False, "credentials", "Meta refused the access token (401): check "
                            "WHATSAPP_CLOUD_ACCESS_TOKEN (channels[].access_token)")]  # fmt: skip
        if status != 200:
            number_id = self.settings.phone_number_id
            return [Finding(False, "credentials", f"the Graph API answered {status} for phone "
                            f"number id {number_id}: check WHATSAPP_CLOUD_PHONE_NUMBER_ID "
                            "(channels[].phone_number_id) in WhatsApp Manager")]  # fmt: skip
        number = json.loads(raw or b"{}")
        shown = f"{number.get('display_phone_number')} ({number.get('verified_name')})"
        return [Finding(True, "credentials", f"accepted: sending as {shown}, quality "
                        f"{number.get('quality_rating', 'unknown')}")]  # fmt: skip

    @property
    def _graph(self) -> str:
        return f"{self.settings.api_base.rstrip('/')}/{self.settings.api_version}"

    @property
    def _bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.access_token}"}

    async def open_media(self, ref: str, max_bytes: int) -> Download:
        # https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#download-media:
        # the media id gives a URL for five minutes, fetched with the same token.
        from channels.http import FAILURES, refuse_declared_size

        if not ref.isdigit():
            raise MediaUnavailable(404, "not a WhatsApp media id")
        try:
            async with self.http.get(f"{self._graph}/{ref}", headers=self._bearer) as answer:
                status = answer.status
                found = json.loads(await answer.read() or b"{}") if status == 200 else {}
        except (*FAILURES, ValueError) as exc:
            raise MediaUnavailable(502, f"the Graph API failed ({type(exc).__name__})") from None
        if status in (400, 404):
            raise MediaUnavailable(404, "Meta no longer has this file")
        url = found.get("url") if isinstance(found, dict) else None
        if status != 200 or not isinstance(url, str):
            raise MediaUnavailable(502, f"the Graph API answered {status} for the file")
        size = found.get("file_size")
        refuse_declared_size(size if isinstance(size, int) else None, max_bytes)
        if not self._may_hold_token(url):  # the token goes to Meta's hosts only
            raise MediaUnavailable(502, "the Graph API gave a file URL off Meta's hosts")
        return Download(await self._download(url, max_bytes), found.get("mime_type"))

    def _may_hold_token(self, url: str) -> bool:
        parts = urlsplit(url)
        ours = urlsplit(self.settings.api_base)
        return (parts.scheme, parts.netloc) == (ours.scheme, ours.netloc) or (
            parts.scheme == "https" and parts.hostname in MEDIA_HOSTS
        )

    async def _download(self, url: str, max_bytes: int) -> AsyncIterator[bytes]:
        """The file's bytes as they come, ended at the cap (channels/http.py)."""
        from channels.http import FAILURES, capped, download_timeout

        try:
            response = await self.http.get(
                url, headers=self._bearer, allow_redirects=False, timeout=download_timeout()
            )
        except FAILURES as exc:
            raise MediaUnavailable(
                502, f"Meta's file server failed ({type(exc).__name__})"
            ) from None
        if response.status != 200:
            response.release()
            raise MediaUnavailable(502, f"Meta's file server answered {response.status}")
        return capped(response, max_bytes, "Meta's file server")


def _list(obj: Any, key: str) -> list[Any]:
    value = obj.get(key, []) if isinstance(obj, dict) else None
    if not isinstance(value, list):
        raise ValueError(f"{key}: must be a list")
    return value


def _inbound(message: Any, names: dict[str, str]) -> Inbound:
    sender, wamid, kind = str(message["from"]), str(message["id"]), str(message.get("type", ""))
    media: tuple[Media, ...] = ()
    body = message.get(kind) if isinstance(message.get(kind), dict) else {}
    if kind == "text":
        text = check_text(str(body.get("body", "")), "text.body", 4096)
    elif kind in MEDIA:
        caption = check_text(str(body.get("caption", "")), "caption", 1024)
        text, media = f"[{kind}] {caption}".strip(), (_file(body, kind, caption),)
    elif kind == "location":
        latitude, longitude = degrees(body, "latitude"), degrees(body, "longitude")
        text = f"[location {latitude}, {longitude}]"
        media = (Location(latitude, longitude),)
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
        kind=None if kind == "text" else kind,
        media=media,
    )


def _file(body: dict[str, Any], kind: str, caption: str) -> MediaFile:
    """A file a contact sent; ``ref`` is its media id. The Graph API says its size
    only when the file is fetched."""
    media_id, mime_type, name = body.get("id"), body.get("mime_type"), body.get("filename")
    if not isinstance(media_id, str) or not media_id.isdigit() or len(media_id) > MAX_ID:
        raise ValueError(f"{kind}.id: expected a media id")
    return MediaFile(
        "voice" if kind == "audio" and body.get("voice") is True else kind,
        media_id,
        mime_type=media_type(mime_type),
        file_name=name[:MAX_NAME] if isinstance(name, str) else None,
        caption=caption or None,
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
