"""Telegram through aiogram: webhook or long polling, and sending with its limits.

The Bot API base URL is configurable (``api_base``), which serves self-hosted Bot
API servers and the fake one the tests start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from channels.base import (
    MAX_ID,
    MAX_NAME,
    Channel,
    ChannelContext,
    ChannelMetric,
    ChannelMisconfigured,
    ChannelRecord,
    Download,
    Finding,
    Inbound,
    MediaUnavailable,
    NetworkFailure,
    ProviderError,
    SendError,
    Sink,
    Throttled,
    Unavailable,
    Undeliverable,
    WebhookRefused,
    WebhookRequest,
    WebhookResult,
    WebhookRoute,
    check_text,
    degrees,
    log,
)
from channels.media import (
    MB,
    Attachment,
    Location,
    Media,
    MediaFile,
    MediaRules,
    SharedContact,
    Unsupported,
    media_type,
)
from common.backoff import Backoff
from common.wire import load_json, secrets_match

# aiogram builds every Bot API model when it is imported (seconds, and 165 MB): it is
# imported when a Telegram channel is built, not when its settings are checked.
if TYPE_CHECKING:
    from aiogram.types import Update

# The update types we turn into messages; Telegram sends only these.
ALLOWED_UPDATES = ["message", "edited_message"]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name


@dataclass(frozen=True)
class TelegramSettings:
    token: str = ""
    mode: Literal["polling", "webhook"] = "polling"
    # Sent by Telegram in X-Telegram-Bot-Api-Secret-Token; empty: one is generated
    # and kept with the channel.
    webhook_secret: str = ""
    api_base: str = "https://api.telegram.org"
    poll_timeout_seconds: int = 25
    # https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this
    messages_per_second: float = 30.0
    seconds_between_messages_to_a_chat: float = 1.0


class TelegramChannel(Channel):
    type = "telegram"
    Settings = TelegramSettings
    required = ("token",)
    secrets = ("token", "webhook_secret")

    def __init__(self, record: ChannelRecord, settings: TelegramSettings, context: ChannelContext):
        super().__init__(record, settings, context)
        from aiogram import Bot
        from aiogram.client.session.aiohttp import AiohttpSession
        from aiogram.client.telegram import TelegramAPIServer

        # aiogram's own aiohttp session, pooled as every channel's (channels/http.py).
        api = TelegramAPIServer.from_base(settings.api_base)
        session = AiohttpSession(api=api, limit=context.connections)
        self.bot = Bot(settings.token, session=session)
        self.secret = settings.webhook_secret or record.webhook_secret
        # For metrics: failed getUpdates calls, and how old the last stored update was.
        self.poll_errors = 0
        self.poll_lag_seconds = 0.0

    @staticmethod
    def mode_of(settings: Any) -> str:
        return str(settings.mode)

    def metrics(self) -> Sequence[ChannelMetric]:
        return (
            ChannelMetric(
                "gateway_telegram_poll_errors",
                "Failed getUpdates calls",
                self.poll_errors,
                "counter",
            ),
            ChannelMetric(
                "gateway_telegram_poll_lag_seconds",
                "Age of the newest update when its batch was stored",
                self.poll_lag_seconds,
            ),
        )

    def pacing(self) -> tuple[float, float]:
        per_second = self.settings.messages_per_second  # 0: no limit (a local Bot API server)
        return (1.0 / per_second if per_second > 0 else 0.0), (
            self.settings.seconds_between_messages_to_a_chat
        )

    # -- inbound ------------------------------------------------------------------

    async def parse_webhook(self, request: WebhookRequest) -> WebhookResult:
        # https://core.telegram.org/bots/api#setwebhook (secret_token)
        if not secrets_match(self.secret, request.headers.get(SECRET_HEADER)):
            raise WebhookRefused(401, f"missing or wrong {SECRET_HEADER}")
        try:
            return WebhookResult(messages=to_inbound(load_json(request.body)))
        except ValueError as exc:
            raise WebhookRefused(400, f"not a Telegram update: {exc}") from None

    webhook_routes = (WebhookRoute("", parse_webhook),)

    # -- outbound -----------------------------------------------------------------

    # https://core.telegram.org/bots/api#sending-files: photos up to 10 MB, other
    # uploads up to 50 MB; any type goes as a document.
    media = MediaRules(
        {"image": 10 * MB, "audio": 50 * MB, "video": 50 * MB, "document": 50 * MB},
        name="Telegram",
    )

    async def send(self, to: str, text: str, message_id: str) -> str:
        return await self._call(to, lambda chat: self.bot.send_message(chat_id=chat, text=text))

    async def send_media(
        self, to: str, attachment: Attachment, caption: str, message_id: str
    ) -> str:
        method = send_method(attachment)
        file: Any = attachment.url  # Telegram fetches it itself
        if attachment.chunks is not None:  # streamed from the database as it is sent
            file = _streamed(attachment.chunks, attachment.file_name or "file")
        send = getattr(self.bot, f"send_{method}")
        return await self._call(to, lambda chat: send(chat, file, caption=caption or None))

    async def _call(self, to: str, send: Callable[[int], Awaitable[Any]]) -> str:
        """``send`` to the chat ``to``, its failure a typed SendError; the message id."""
        from aiogram.exceptions import (
            ClientDecodeError,
            TelegramAPIError,
            TelegramBadRequest,
            TelegramForbiddenError,
            TelegramNetworkError,
            TelegramNotFound,
            TelegramRetryAfter,
            TelegramServerError,
            TelegramUnauthorizedError,
        )

        if not to.lstrip("-").isdigit():
            raise Undeliverable(f"not a Telegram chat id: {to!r}")
        try:
            sent = await send(int(to))
        except SendError:  # an upload's bytes failed us, not Telegram
            raise
        except TelegramRetryAfter as exc:
            raise Throttled(exc.message, "429", retry_after=float(exc.retry_after)) from None
        except TelegramForbiddenError as exc:  # blocked by the user, kicked from the group
            raise Undeliverable(exc.message, "403") from None
        except (TelegramBadRequest, TelegramNotFound) as exc:  # chat not found, text too long
            raise Undeliverable(exc.message, "400") from None
        except TelegramUnauthorizedError as exc:
            raise ChannelMisconfigured(exc.message, "401") from None
        except (TelegramServerError, TelegramNetworkError) as exc:
            raise NetworkFailure(self.redact(exc.message)) from None
        except ClientDecodeError:  # an HTML error page from Telegram's front end
            raise NetworkFailure("the Bot API answered something that is not JSON") from None
        except TelegramAPIError as exc:
            raise ProviderError(self.redact(exc.message)) from None
        return str(sent.message_id)

    # -- background work ----------------------------------------------------------

    def background(self, sink: Sink) -> Awaitable[None] | None:
        if self.mode == "polling":
            return self._poll(sink)
        if self.context.public_url:
            return self._register()
        log.warning(
            "telegram channel %r is in webhook mode without PUBLIC_URL: register %s yourself",
            self.name,
            self.webhook_url(),
        )
        return None

    async def close(self) -> None:
        await self.bot.session.close()

    async def open_media(self, ref: str, max_bytes: int) -> Download:
        # https://core.telegram.org/bots/api#getfile: a path for an hour, files to 20 MB.
        from aiogram.exceptions import TelegramAPIError, TelegramBadRequest

        try:
            file = await self.bot.get_file(ref)
        except TelegramBadRequest:
            raise MediaUnavailable(404, "Telegram no longer has this file") from None
        except (TelegramAPIError, OSError, TimeoutError) as exc:
            raise MediaUnavailable(
                502, f"Telegram did not give the file ({_reason(exc)})"
            ) from None
        if file.file_size is not None and file.file_size > max_bytes:
            raise MediaUnavailable(413, f"the file is over the {max_bytes}-byte limit")
        if not file.file_path:
            raise MediaUnavailable(404, "Telegram gives no path for this file")
        session = self.bot.session
        url = session.api.file_url(self.bot.token, file.file_path)  # holds the token: never shown
        return Download(_file_chunks(session, url, max_bytes))

    registers_webhooks = True

    async def register_webhook(self) -> None:
        """Point Telegram at our webhook URL with our secret."""
        await self.bot.set_webhook(
            url=self.webhook_url(),
            secret_token=self.secret,
            allowed_updates=ALLOWED_UPDATES,
        )

    async def delete_webhook(self) -> None:
        # Updates not yet delivered stay queued for getUpdates (drop_pending_updates off):
        # https://core.telegram.org/bots/api#deletewebhook
        await self.bot.delete_webhook(drop_pending_updates=False)

    async def diagnose(self) -> list[Finding]:
        """The token (getMe), then the webhook Telegram has (getWebhookInfo) against
        this channel's mode: our URL in webhook mode, none when polling."""
        from aiogram.exceptions import TelegramUnauthorizedError

        try:
            me = await self.bot.get_me()
            info = await self.bot.get_webhook_info()
        except TelegramUnauthorizedError:
            refused = (
                "Telegram refused the token (401): check TELEGRAM_BOT_TOKEN (channels[].token)"
            )
            return [Finding(False, "token", refused)]
        except Exception as exc:  # no answer, or not the Bot API's
            reason = self.redact(_reason(exc))
            return [Finding(False, "token", f"Telegram did not answer ({reason}): is "
                            "api.telegram.org reachable from here?")]  # fmt: skip
        found = [Finding(True, "token", f"accepted: the bot is @{me.username}")]
        registered = info.url or ""
        if self.mode == "polling" and registered:
            found.append(Finding(False, "webhook", f"set at {registered}, so Telegram refuses "
                                 "getUpdates: run `bot-gateway delete-webhook`"))  # fmt: skip
        elif self.mode == "polling":
            found.append(Finding(True, "webhook", "none set: polling gets the updates"))
        elif registered != self.webhook_url():
            where = registered or "nowhere"
            found.append(Finding(False, "webhook", f"set at {where}, not at {self.webhook_url()}"
                                 ": run `bot-gateway set-webhook`"))  # fmt: skip
        else:
            last = (
                f"; Telegram's last error: {info.last_error_message}"
                if info.last_error_message
                else ""
            )
            found.append(Finding(not last, "webhook", f"set at {registered}{last}"))
        return found

    async def _register(self) -> None:
        delay = Backoff()
        while True:
            try:
                await self.register_webhook()
            except Exception as exc:  # any answer but success: an HTML error page too
                wait = delay.next()
                log.warning(
                    "telegram channel %r: setWebhook failed (%s); retrying in %.0f s",
                    self.name,
                    self.redact(_reason(exc)),
                    wait,
                )
                await asyncio.sleep(wait)
            else:
                log.info("telegram channel %r: webhook registered", self.name)
                return

    async def _poll(self, sink: Sink) -> None:
        """getUpdates long polling; the offset moves on only after the batch is stored."""
        offset: int | None = None
        delay = Backoff()
        timeout = self.settings.poll_timeout_seconds
        log.info("telegram channel %r: polling for updates", self.name)
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=offset,
                    timeout=timeout,
                    allowed_updates=ALLOWED_UPDATES,
                    request_timeout=timeout + 10,
                )
            except Exception as exc:  # also an answer that is not JSON (an HTML error page)
                self.poll_errors += 1
                wait = delay.next()
                level, reason = _poll_failure(exc)
                log.log(level, "telegram channel %r: %s; retrying in %.1f s",
                        self.name, self.redact(reason), wait)  # fmt: skip
                await asyncio.sleep(wait)
                continue
            if not updates:
                delay.reset()
                continue
            try:
                await sink(self._readable(updates))
            except Unavailable:  # storage down: keep the offset, fetch the batch again
                wait = delay.next()
                log.warning("telegram channel %r: updates not stored yet (database unavailable); "
                            "retrying in %.1f s", self.name, wait)  # fmt: skip
                await asyncio.sleep(wait)
                continue
            delay.reset()
            newest = updates[-1].message or updates[-1].edited_message
            if newest is not None:
                self.poll_lag_seconds = max(0.0, time.time() - newest.date.timestamp())
            # Asking for offset = last + 1 is what confirms the batch to Telegram.
            offset = updates[-1].update_id + 1

    def _readable(self, updates: list[Update]) -> list[Inbound]:
        """The messages of a batch; an update we cannot read is logged and skipped,
        so one bad update never holds back the ones after it."""
        messages = []
        for update in updates:
            try:
                messages += to_inbound(as_json(update))
            except (ValueError, WebhookRefused) as exc:
                log.warning(
                    "telegram channel %r: update %s skipped: %s", self.name, update.update_id, exc
                )
        return messages


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "message", "") or type(exc).__name__)


def _poll_failure(exc: BaseException) -> tuple[int, str]:
    """How loudly to log a failed getUpdates, and what to say."""
    from aiogram.exceptions import TelegramConflictError, TelegramUnauthorizedError

    if isinstance(exc, TelegramConflictError):
        reason = (
            "another poller or a webhook uses this bot (409); stop it, or delete the webhook "
            "with `bot-gateway delete-webhook`"
        )
        return logging.ERROR, reason
    if isinstance(exc, TelegramUnauthorizedError):
        return logging.ERROR, "the bot token is refused (401)"
    return logging.WARNING, f"getUpdates failed ({_reason(exc)})"


def as_json(update: Update) -> dict[str, Any]:
    """An update aiogram parsed, back in the Bot API's own JSON shape."""
    return update.model_dump(mode="json", by_alias=True, exclude_none=True)


def to_inbound(update: Any) -> list[Inbound]:
    """The messages an update (the Bot API's JSON) carries; other updates carry none.

    Reads the JSON directly: the webhook is the hot path, and building aiogram's
    models for it cost a tenth of a request. ValueError if it is no update at all.
    """
    # https://core.telegram.org/bots/api#update
    update_id = _field(update, "update_id", int)
    message = _field(update, "message", dict, required=False)
    edited = message is None and "edited_message" in update
    if edited:
        message = _field(update, "edited_message", dict)
    if message is None:
        return []
    _field(message, "message_id", int)
    chat = _field(message, "chat", dict)
    chat_id = _field(chat, "id", int)
    sender = _field(message, "from", dict, required=False) or {}
    text, kind, media = describe(message)
    if edited:
        text = f"[edited] {text}"
    name = " ".join(str(sender[p]) for p in ("first_name", "last_name") if sender.get(p))
    return [
        Inbound(
            contact_external_id=str(chat_id),
            dedupe_key=str(update_id),
            text=text,
            name=name or str(chat.get("title") or ""),
            username=str(sender.get("username") or chat.get("username") or ""),
            external_id=str(message["message_id"]),
            kind=kind,
            media=media,
            edited=edited,
        )
    ]


def _field(obj: Any, key: str, kind: type, *, required: bool = True) -> Any:
    if not isinstance(obj, dict):
        raise ValueError(f"not an object where {key} should be")
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{key}: expected {kind.__name__}")
    return value


# https://core.telegram.org/bots/api#message: the fields that carry a file, and the
# type to show for a file Telegram sends without one.
FILE_KINDS = {
    "document": None,
    "voice": "audio/ogg",
    "audio": None,
    "video": None,
    "video_note": "video/mp4",
    "animation": "video/mp4",
    "sticker": "image/webp",
}


def describe(message: dict[str, Any]) -> tuple[str, str | None, tuple[Media, ...]]:
    """Text for people, the message's kind (None: plain text) and its media, for every
    kind of message (each file's ``ref``, its file_id, stays with the gateway)."""
    # https://core.telegram.org/bots/api#sendmessage (text: 4096), #sendphoto (caption: 1024)
    text = _field(message, "text", str, required=False)
    if text is not None:
        return check_text(text, "text", 4096), None, ()
    caption = _field(message, "caption", str, required=False)
    if caption is not None:
        check_text(caption, "caption", 1024)
    said = f" {caption}" if caption else ""
    if photo := _field(message, "photo", list, required=False):
        item = _file(photo[-1], "photo", "image/jpeg", caption)  # sizes come smallest first
        return f"[photo]{said}", "photo", (item,)
    for kind, mime_type in FILE_KINDS.items():
        if media := _field(message, kind, dict, required=False):
            item = _file(media, kind, mime_type, caption)
            if kind == "sticker":
                emoji = f" {media['emoji']}" if isinstance(media.get("emoji"), str) else ""
                label = f"sticker{emoji}"
            elif kind == "voice":
                label = f"voice message, {media.get('duration')} s"
            else:
                label = item.file_name or kind.replace("_", " ")
            return f"[{label}]{said}", kind, (item,)
    if location := _field(message, "location", dict, required=False):
        latitude, longitude = degrees(location, "latitude"), degrees(location, "longitude")
        return f"[location {latitude}, {longitude}]", "location", (Location(latitude, longitude),)
    if contact := _field(message, "contact", dict, required=False):
        phone = str(contact.get("phone_number") or "")[:MAX_ID]
        name = " ".join(str(contact.get(k) or "") for k in ("first_name", "last_name")).strip()
        return f"[contact {phone}]", "contact", (SharedContact(phone, name[:MAX_NAME] or None),)
    kind = next(
        (k for k in ("poll", "dice", "venue", "game", "story") if message.get(k)),
        "unsupported message",
    )
    return f"[{kind}]{said}", kind, (Unsupported(caption),)


def _file(media: Any, kind: str, mime_type: str | None, caption: str | None) -> MediaFile:
    """One file a contact sent, with its ``ref`` for getFile."""
    ref = str(_field(media, "file_id", str))  # first: it checks media is an object
    size, name, shown = media.get("file_size"), media.get("file_name"), media.get("mime_type")
    return MediaFile(
        kind,
        ref,
        mime_type=media_type(shown) or mime_type,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        file_name=name[:MAX_NAME] if isinstance(name, str) else None,
        caption=caption,
    )


async def _file_chunks(session: Any, url: str, max_bytes: int) -> AsyncIterator[bytes]:
    """The file's bytes, ended at the cap (Telegram may have said less, or nothing);
    a failure says nothing of the URL, which holds the token."""
    from channels.http import CHUNK, DOWNLOAD_SECONDS, up_to

    chunks = session.stream_content(url, timeout=DOWNLOAD_SECONDS, chunk_size=CHUNK)
    async for chunk in up_to(chunks, max_bytes, "Telegram's file server"):
        yield chunk


# Which Bot API method sends a file: https://core.telegram.org/bots/api#sendphoto
# (JPEG, PNG, WebP), #sendvoice (OGG/OPUS, MP3, M4A), #sendvideo (MPEG4); the rest
# as a document.
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
VOICE_TYPES = frozenset({"audio/ogg", "audio/mpeg", "audio/mp4"})


def send_method(attachment: Attachment) -> str:
    """photo, voice, video or document: the Bot API's sendX for a file."""
    if attachment.mime_type in PHOTO_TYPES:
        return "photo"
    if attachment.mime_type in VOICE_TYPES:
        return "voice"
    if attachment.mime_type == "video/mp4":
        return "video"
    return "document"


def _streamed(chunks: Callable[[], AsyncIterator[bytes]], file_name: str) -> Any:
    """An upload as aiogram sends a file: read as the request is written, never whole."""
    from aiogram.types import InputFile

    class Streamed(InputFile):
        async def read(self, bot: Any) -> AsyncIterator[bytes]:  # type: ignore[override]
            async for chunk in chunks():
                yield chunk

    return Streamed(filename=file_name)
