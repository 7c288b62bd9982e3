"""The one interface every channel implements, and the typed errors of sending.

A channel declares its webhook routes (:class:`WebhookRoute`); each turns a
provider's call into one :class:`WebhookResult`: channel-neutral :class:`Inbound`
messages, status reports on our sends (:class:`StatusReport`), and the reply the
provider expects. A channel may poll instead (:meth:`Channel.background`), and it sends text
to a contact. Send errors say whether to retry, so the dispatcher never needs to
know a provider's error codes.
"""

from __future__ import annotations

import builtins
import functools
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Protocol
from urllib.parse import parse_qsl

from channels.media import Attachment, Media, MediaRules, listed
from common.wire import essence, storable

log = logging.getLogger("gateway.channels")


# Limits at the edge: what no provider sends, refused before anything is stored.
MAX_FORM_FIELDS = 256  # Twilio sends about 40, with ten media
FORM = "application/x-www-form-urlencoded"
MAX_NAME = 256  # a sender's name or username
MAX_ID = 128  # a provider's id of a sender or a message
# The longest text any channel delivers (Telegram and WhatsApp: 4,096 characters),
# with room for the labels we add ("[edited] ", "[photo] " and a 1,024-character
# caption). Each channel refuses its own fields past the provider's limit first.
MAX_INBOUND_TEXT = 5_200


@dataclass(frozen=True)
class Inbound:
    """One message a contact sent, in the channel's own terms."""

    contact_external_id: str  # chat id, phone number, ...
    dedupe_key: str  # the provider's id for this delivery: stored once
    text: str
    name: str = ""
    username: str = ""
    external_id: str = ""  # the provider's id of the message itself
    kind: str | None = None  # what it is, if not plain text: photo, location, button...
    media: tuple[Media, ...] = ()
    edited: bool = False  # an edit of a message the contact sent before

    @property
    def meta(self) -> dict[str, Any]:
        """What is stored with the message besides its text ({} for plain text)."""
        meta: dict[str, Any] = {} if self.kind is None else {"kind": self.kind}
        if self.media:
            meta["media"] = [listed(item) for item in self.media]
        if self.edited:
            meta["edited"] = True
        return meta

    def __post_init__(self) -> None:
        # The database stores UTF-8: a string that has no UTF-8 form (a lone
        # surrogate from a JSON "\ud800" escape) is refused here, before it can fail
        # the bulk write it would share with other webhooks.
        for name, (label, limit) in _FIELDS.items():
            value = getattr(self, name)
            if not storable(value):
                raise WebhookRefused(400, f"{label}: not valid Unicode text (a lone surrogate?)")
            if limit is not None and len(value) > limit:
                raise WebhookRefused(400, f"{label}: longer than {limit} characters")


_FIELDS: dict[str, tuple[str, int | None]] = {
    "text": ("the message text", MAX_INBOUND_TEXT),
    "name": ("the sender's name", MAX_NAME),
    "username": ("the sender's username", MAX_NAME),
    "contact_external_id": ("the sender's id", MAX_ID),
    "dedupe_key": ("the message's id", MAX_ID * 2),  # may join two ids
    "external_id": ("the message's id", MAX_ID),
    "meta": ("the message's attachments", None),
}


def check_text(value: str, label: str, limit: int) -> str:
    """``value`` if it is at most ``limit`` characters; a 400 naming ``label`` if not."""
    if len(value) > limit:
        raise WebhookRefused(400, f"{label}: longer than {limit} characters")
    return value


def degrees(location: dict[str, Any], key: str) -> float:
    """A location's latitude or longitude as JSON gave it; ValueError if not a number."""
    value = location.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"location.{key}: expected a number")
    return float(value)


@dataclass(frozen=True)
class StatusReport:
    """A provider's report on the status of a message we sent."""

    message_id: str
    status: str  # queued | sent | delivered | read | failed
    error: str | None = None
    external_id: str = ""  # the provider's id of the message, when the report names it


@dataclass(frozen=True)
class WebhookRequest:
    """What a channel may look at when it verifies and parses a webhook."""

    url: str  # as the provider called it: the public URL when one is configured
    headers: Mapping[str, str]
    body: bytes
    query: Mapping[str, str] = field(default_factory=dict)  # the URL's, last value of each
    # A direct peer on this machine, with no forwarding header: nobody relayed it.
    from_loopback: bool = False

    @functools.cached_property
    def form(self) -> Mapping[str, str]:
        """The body's form fields, parsed on first use, so a channel that checks a
        secret header first never parses a forged body; at most ``MAX_FORM_FIELDS``."""
        if essence(self.headers.get("Content-Type", "")) != FORM:
            return {}
        if self.body.count(b"&") >= MAX_FORM_FIELDS:
            raise WebhookRefused(400, f"more than {MAX_FORM_FIELDS} form fields")
        text = self.body.decode("utf-8", errors="replace")
        return dict(parse_qsl(text, keep_blank_values=True))


@dataclass(frozen=True)
class WebhookReply:
    """What a webhook answers, once what it carried is stored."""

    body: str = '{"ok": true}'
    content_type: str = "application/json"
    status: int = 200


@dataclass(frozen=True)
class WebhookResult:
    """What one webhook call carried, and the answer the provider expects."""

    messages: Sequence[Inbound] = ()
    statuses: Sequence[StatusReport] = ()
    reply: WebhookReply = WebhookReply()


@dataclass(frozen=True)
class WebhookRoute:
    """One webhook of a channel type, at /webhooks/<type>/<channel>/<suffix>.

    ``handle`` is the channel's method that verifies and parses the call (a function
    of the class body, called with the channel), declared after it as data:
    ``webhook_routes = (WebhookRoute("", parse_webhook),)``.
    """

    suffix: str  # "" or a path segment with its slash: "status/"
    handle: Callable[[Any, WebhookRequest], Awaitable[WebhookResult]]
    methods: tuple[str, ...] = ("POST",)
    # The largest body the provider sends here; a bigger one is a 413 before it is read
    # (None: server.max_body_bytes).
    max_body: int | None = None


class WebhookRefused(Exception):
    """The webhook is not genuine (401/403) or not a message (400); nothing is stored."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- send errors ---------------------------------------------------------------------


class SendError(Exception):
    """Sending failed; ``retryable`` says whether trying again may succeed, and
    ``retry_after`` (seconds) when the provider said when."""

    retryable: ClassVar[bool] = False

    def __init__(self, message: str, code: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retry_after = retry_after

    def describe(self) -> str:
        return f"{self.code}: {self.message}" if self.code else self.message


class NetworkFailure(SendError):
    """The provider could not be reached, or answered 5xx."""

    retryable = True


class Throttled(SendError):
    """The provider asked us to slow down; ``retry_after`` is seconds, when given."""

    retryable = True


class Undeliverable(SendError):
    """Permanent for this message: the contact blocked the bot, a bad recipient..."""


class ProviderError(SendError):
    """An error we do not classify: retried, within the attempts limit."""

    retryable = True


class ChannelMisconfigured(SendError):
    """Our credentials or settings are wrong: no retry helps until they are fixed."""


# -- media ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Download:
    """A contact's file, opened at the provider: its bytes as they come."""

    chunks: AsyncIterator[bytes]
    content_type: str | None = None


class MediaUnavailable(Exception):
    """A file cannot be fetched: gone or unknown (404), over the size cap (413), or the
    provider failed (502). ``message`` is for the agent: it never holds a URL or token."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- channels ------------------------------------------------------------------------


class Unavailable(Exception):
    """A sink could not store what it was handed now (the database is unreachable);
    the channel keeps it and tries again later."""


# Where a channel hands what it receives by polling; returns once it is stored, or
# raises Unavailable. A message that can never be stored is the gateway's to log.
Sink = Callable[[list[Inbound]], Awaitable[None]]


@dataclass(frozen=True)
class ChannelMetric:
    """One of a channel's own figures, read at each scrape of /metrics (labelled
    with the channel's name)."""

    name: str  # gateway_<type>_...
    help: str
    value: float
    kind: str = "gauge"  # or "counter"


@dataclass(frozen=True)
class Finding:
    """One thing ``bot-gateway doctor`` checked of a channel at its provider: whether
    it is right, and what was found, or what is wrong and what to do."""

    ok: bool
    what: str  # "token", "webhook", ...
    detail: str


@dataclass(frozen=True)
class ChannelContext:
    public_url: str  # "" when the gateway has none
    loopback_only: bool = False  # only this machine can reach the gateway
    connections: int = 32  # sends at once (delivery.concurrency): each channel's pool


class ChannelRecord(Protocol):
    """The channel as the gateway stored it (storage.models.StoredChannel is one)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def webhook_secret(self) -> str: ...


class Channel(ABC):
    """Base of every channel type. Subclasses set ``type`` and ``Settings``."""

    type: ClassVar[str]
    Settings: ClassVar[builtins.type]
    # Settings that must be non-empty for the channel to run.
    required: ClassVar[tuple[str, ...]] = ()
    # Names of settings that are secrets: never stored, shown or logged.
    secrets: ClassVar[tuple[str, ...]] = ()
    # The webhooks providers call: none for a channel that only polls.
    webhook_routes: ClassVar[tuple[WebhookRoute, ...]] = ()
    # The longest text one send may carry (Telegram's 4,096 unless the type says less).
    max_text: ClassVar[int] = 4096
    # How long after a contact's last message free-form text may reach them, when the
    # provider has such a rule (WhatsApp's customer service window); None: always.
    reply_window: ClassVar[timedelta | None] = None
    # It sends a provider's approved templates (send_template), at any time.
    sends_templates: ClassVar[bool] = False
    # The files it sends (send_media): None, none.
    media: ClassVar[MediaRules | None] = None

    def __init__(self, record: ChannelRecord, settings: Any, context: ChannelContext) -> None:
        self.id = record.id
        self.name = record.name
        self.mode = record.mode
        self.settings = settings
        self.context = context
        self.faq_auto_reply = True  # set from the channel's config

    @classmethod
    def off_because(cls, settings: Any, context: ChannelContext) -> str | None:
        """Why the channel must not run with these settings here, or None."""
        return None

    @staticmethod
    def mode_of(settings: Any) -> str:
        return str(getattr(settings, "mode", "webhook"))

    def pacing(self) -> tuple[float, float]:
        """The smallest gap in seconds between two sends: per channel, per contact."""
        return 0.0, 0.0

    def metrics(self) -> Sequence[ChannelMetric]:
        """The channel's own figures for /metrics (a poller's errors and lag)."""
        return ()

    def redact(self, text: str) -> str:
        """``text`` with this channel's secrets masked: a client error may quote a URL
        that carries one (aiohttp names the Bot API URL, bot token in its path)."""
        for name in self.secrets:
            secret = str(getattr(self.settings, name, "") or "")
            if secret:
                text = text.replace(secret, "***")
        return text

    def webhook_url(self, suffix: str = "") -> str:
        path = webhook_path(self.type, self.name, suffix)
        return self.context.public_url.rstrip("/") + path if self.context.public_url else path

    @abstractmethod
    async def send(self, to: str, text: str, message_id: str) -> str:
        """Send ``text`` to the contact ``to``; returns the provider's message id."""

    async def send_template(self, to: str, template: Mapping[str, Any], message_id: str) -> str:
        """Send an approved template (``{content_sid, variables}``); the provider's id."""
        raise Undeliverable(f"the {self.type} channel sends no templates")

    async def send_media(
        self, to: str, attachment: Attachment, caption: str, message_id: str
    ) -> str:
        """Send a file, with ``caption`` ("" for none); the provider's message id."""
        raise Undeliverable(f"the {self.type} channel sends no files")

    def background(self, sink: Sink) -> Awaitable[None] | None:
        """Work to run while this gateway works the channel (a poller, a webhook
        registration), or None. The gateway supervises it: restarts it if it raises,
        cancels it when it stops or another gateway takes the channel over."""
        return None

    async def diagnose(self) -> list[Finding]:
        """Check the channel at its provider: its credentials, and its webhook's
        registration where the provider keeps one. A channel type with nothing to
        check there answers nothing."""
        return []

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients (HTTP sessions) at shutdown."""

    async def list_templates(self) -> list[dict[str, Any]]:
        """The provider's message templates, for a channel that ``sends_templates``; a
        :class:`SendError` says why the provider gave none."""
        raise Undeliverable(f"the {self.type} channel sends no templates")

    async def open_media(self, ref: str, max_bytes: int) -> Download:
        """Open a file a contact sent (``ref`` is the channel's own handle for it), or
        raise :class:`MediaUnavailable`; a file known to be over ``max_bytes`` is 413."""
        raise MediaUnavailable(404, f"the {self.type} channel keeps no files")

    # A channel whose provider is told where to call (Telegram's setWebhook) says so,
    # and ``bot-gateway set-webhook``/``delete-webhook`` work for it.
    registers_webhooks: ClassVar[bool] = False

    async def register_webhook(self) -> None:
        """Tell the provider to call :meth:`webhook_url` (with our secret)."""
        raise NotImplementedError(f"{self.type} channels do not register webhooks")

    async def delete_webhook(self) -> None:
        """Tell the provider to stop calling us (Telegram: so that polling may start)."""
        raise NotImplementedError(f"{self.type} channels do not register webhooks")


def webhook_path(channel_type: str, name: str, suffix: str = "") -> str:
    """Where a channel's webhook is served (handlers/webhooks.py mounts the pattern)."""
    return f"/webhooks/{channel_type}/{name}/{suffix}"
