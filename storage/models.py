"""The records the repositories return: frozen dataclasses, never raw documents.

Each model is built from its stored document by ``of`` (which renames ``_id`` to
``id``; fields added since the previous release are optional, and older shapes are
brought up to date by a schema step, storage/schema.py); only storage code builds them
and only storage code knows the documents' keys. Fields that only the storage
itself reads (list keys, claims, the normalised question) are not models' fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from storage.records import Document, derived_id
from storage.search import words


def conversation_id(contact_id: str) -> str:
    """A contact's one conversation: derived, so a message knows it without a read."""
    return derived_id("conversation", contact_id)


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class Status(StrEnum):
    """Where a message stands. Inbound messages are ``received``; outbound ones move
    forward only, ``queued`` → ``sending`` → ``sent`` → ``delivered`` → ``read``, or
    to ``failed`` before they were delivered."""

    RECEIVED = "received"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"

    def follows(self) -> tuple[Status, ...]:
        """The statuses a message may move to this one from: a provider's late
        "delivered" cannot undo "read", nor "failed" undo "delivered"."""
        return _FOLLOWS.get(self, ())


_FOLLOWS: dict[Status, tuple[Status, ...]] = {
    Status.SENT: (Status.QUEUED, Status.SENDING),
    Status.DELIVERED: (Status.QUEUED, Status.SENDING, Status.SENT),
    Status.READ: (Status.QUEUED, Status.SENDING, Status.SENT, Status.DELIVERED),
    Status.FAILED: (Status.QUEUED, Status.SENDING, Status.SENT),
}
UNSENT = (Status.QUEUED, Status.SENDING)


@dataclass(frozen=True, slots=True)
class AgentRef:
    """Who sent a message, as the message remembers them: an agent, or an API
    token (``kind`` its role, ``username`` its name)."""

    id: str
    username: str
    kind: str = "agent"

    @classmethod
    def of(cls, d: Document) -> AgentRef:
        return cls(d["id"], d["username"], d.get("kind", "agent"))

    def stored(self) -> Document:
        shown: Document = {"id": self.id, "username": self.username}
        if self.kind != "agent":
            shown["kind"] = self.kind
        return shown


class Role(StrEnum):
    """What an agent may do: an admin also manages the other agents."""

    ADMIN = "admin"
    AGENT = "agent"


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    username: str
    display_name: str
    is_available: bool
    created_at: datetime
    updated_at: datetime
    password_hash: str = field(repr=False)
    last_assigned_at: datetime | None = None
    # Tokens issued before this are refused (a password change); None: none refused.
    tokens_valid_after: datetime | None = None
    ended_sign_ins: frozenset[str] = frozenset()  # sign-in families that were ended
    # The one sign-in a password change kept (the one that made it): tokens_valid_after
    # does not apply to it.
    kept_sign_in: str | None = None
    role: Role = Role.AGENT
    disabled: bool = False  # by an admin: no sign-in, no conversations

    @classmethod
    def of(cls, d: Document) -> Agent:
        return cls(
            id=d["_id"],
            username=d["username"],
            display_name=d["display_name"],
            is_available=d["is_available"],
            created_at=d["created_at"],
            updated_at=d["updated_at"],
            password_hash=d["password_hash"],
            last_assigned_at=d.get("last_assigned_at"),
            tokens_valid_after=d.get("tokens_valid_after"),
            ended_sign_ins=frozenset(d.get("signed_out") or ()),
            kept_sign_in=d.get("kept_sign_in"),
            role=Role.ADMIN if d.get("role") == Role.ADMIN.value else Role.AGENT,
            disabled=d.get("disabled") is True,
        )

    @property
    def ref(self) -> AgentRef:
        return AgentRef(self.id, self.username)


class TokenRole(StrEnum):
    """What an API token stands for: a bot that answers contacts first, or another
    system (a CRM, a ticketing tool) reading and acting through the API."""

    BOT = "bot"
    INTEGRATION = "integration"


class Scope(StrEnum):
    """What an API token may do. Agents are not scoped: their role decides."""

    READ = "read"  # every GET, and the event stream
    SEND = "send"  # POST /api/v1/messages/
    CONVERSATIONS = "conversations"  # assign, hand off, read, resolve
    ADMIN = "admin"  # agents, tokens, FAQs: what an admin manages


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An integration's credential. Its secret is stored only as a hash; ``hint``
    shows its prefix and last characters so a leaked one can be recognised."""

    id: str
    name: str
    role: TokenRole
    scopes: frozenset[Scope]
    hint: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None = None

    @classmethod
    def of(cls, d: Document) -> ApiToken:
        return cls(
            id=d["_id"],
            name=d["name"],
            role=TokenRole(d["role"]),
            scopes=frozenset(Scope(s) for s in d["scopes"]),
            hint=d["hint"],
            created_by=d["created_by"],
            created_at=d["created_at"],
            last_used_at=d.get("last_used_at"),
        )

    @property
    def ref(self) -> AgentRef:
        return AgentRef(self.id, self.name, self.role.value)


@dataclass(frozen=True, slots=True)
class ContactRef:
    """A contact as a message remembers them."""

    id: str
    external_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Contact:
    id: str
    channel_id: str
    external_id: str  # the provider's id: a Telegram chat, a WhatsApp number
    name: str
    username: str
    assigned_agent_id: str | None  # its conversation's, filled where agents see it
    created_at: datetime
    last_message_at: datetime | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)  # the team's notes on it

    @classmethod
    def of(cls, d: Document) -> Contact:
        return cls(
            id=d["_id"],
            channel_id=d["channel_id"],
            external_id=d["external_id"],
            name=d.get("name", ""),
            username=d.get("username", ""),
            assigned_agent_id=None,  # read from the conversation (storage/contacts.py)
            created_at=d["created_at"],
            last_message_at=d.get("last_message_at"),
            attributes=d.get("attributes") or {},
        )

    @property
    def ref(self) -> ContactRef:
        return ContactRef(self.id, self.external_id, self.name)

    @property
    def words(self) -> list[str]:
        """What ``?q=`` finds the contact by (storage/search.py)."""
        return words(self.name, self.username, self.external_id)


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    channel_id: str
    contact_id: str
    contact: ContactRef
    agent_id: str | None  # who sent it; None for inbound messages and auto-replies
    agent: AgentRef | None
    direction: Direction
    content: str
    status: Status
    created_at: datetime
    updated_at: datetime
    external_id: str = ""  # the provider's message id
    error: str | None = None  # why sending failed
    auto_reply: bool = False  # sent by the gateway from an FAQ
    faq_id: str | None = None  # the FAQ it answered, or that answered it
    # What it carried besides text, as agents see it: each a dict of kind, id and what
    # the channel knew (mime_type, size, file_name, caption; latitude and longitude).
    media: tuple[dict[str, Any], ...] = ()
    template: dict[str, Any] | None = None  # an approved template sent instead of text

    @property
    def conversation_id(self) -> str:
        return conversation_id(self.contact_id)

    @classmethod
    def of(cls, d: Document) -> Message:
        contact, agent = d["contact"], d.get("agent")
        return cls(
            id=d["_id"],
            channel_id=d["channel_id"],
            contact_id=d["contact_id"],
            contact=ContactRef(contact["id"], contact["external_id"], contact.get("name", "")),
            agent_id=d.get("agent_id"),
            agent=AgentRef.of(agent) if agent else None,
            direction=Direction(d["direction"]),
            content=d["content"],
            status=Status(d["status"]),
            created_at=d["created_at"],
            updated_at=d["updated_at"],
            external_id=d["external_id"],
            error=d.get("error"),
            auto_reply=d.get("auto_reply", False),
            faq_id=d.get("faq_id"),
            media=tuple(d["media"]) if "media" in d else shown_media(d.get("meta")),
            template=d.get("template"),
        )


def shown_media(meta: Mapping[str, Any] | None) -> tuple[dict[str, Any], ...]:
    """A stored message's media as agents see them: numbered, without the provider's
    reference (a file_id or a URL that only the gateway's credentials open)."""
    listed = (meta or {}).get("media") or []
    return tuple(
        {**{k: v for k, v in item.items() if k != "ref"}, "id": str(index)}
        for index, item in enumerate(listed)
    )


@dataclass(frozen=True, slots=True)
class StoredChannel:
    id: str
    name: str
    type: str
    mode: str  # "webhook" or "polling"
    settings: Mapping[str, Any]  # its settings without the secrets
    webhook_secret: str = field(repr=False)  # made here, for providers that sign with ours
    created_at: datetime
    updated_at: datetime
    bot_id: str | None = None  # the API token (role bot) that answers its contacts first

    @classmethod
    def of(cls, d: Document) -> StoredChannel:
        return cls(
            id=d["_id"],
            name=d["name"],
            type=d["type"],
            mode=d["mode"],
            settings=d.get("settings", {}),
            webhook_secret=d.get("webhook_secret", ""),
            created_at=d["created_at"],
            updated_at=d["updated_at"],
            bot_id=d.get("bot_id"),
        )


@dataclass(frozen=True, slots=True)
class Faq:
    id: str
    question: str
    alternatives: tuple[str, ...]
    answer: str
    enabled: bool
    hits: int  # auto-replies sent
    phrases: tuple[str, ...]  # the normalised question and alternatives it matches
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, d: Document) -> Faq:
        return cls(
            id=d["_id"],
            question=d["question"],
            alternatives=tuple(d.get("alternatives", ())),
            answer=d["answer"],
            enabled=d.get("enabled", True),
            hits=d.get("hits", 0),
            phrases=tuple(d.get("phrases", ())),
            created_at=d["created_at"],
            updated_at=d["updated_at"],
        )


@dataclass(frozen=True, slots=True)
class SavedReply:
    """A text the team inserts by its shortcut; ``{{contact.name}}``-style fields are
    filled where it is inserted."""

    id: str
    shortcut: str
    text: str
    created_by: str  # an agent's id
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, d: Document) -> SavedReply:
        return cls(
            d["_id"], d["shortcut"], d["text"], d["created_by"], d["created_at"], d["updated_at"]
        )


@dataclass(frozen=True, slots=True)
class Unanswered:
    """A normalised inbound text that no FAQ answered, and how often it came."""

    question: str
    example: str  # one way it was asked
    count: int  # messages asking it
    contacts: int  # contacts asking it


class ConversationStatus(StrEnum):
    OPEN = "open"  # waiting on us; a new inbound message reopens any conversation
    PENDING = "pending"  # waiting on the contact
    RESOLVED = "resolved"
    # Its channel's bot answers it: new and reopened conversations of a channel with a
    # bot start here, and are offered to agents once handed off (gateway/bot_lane.py).
    BOT = "bot"


@dataclass(frozen=True, slots=True)
class ChannelRef:
    """A channel as a conversation shows it."""

    id: str
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class Preview:
    """A conversation's last message, as a list shows it."""

    id: str
    direction: Direction
    content: str  # cut to PREVIEW_CHARS
    status: Status
    agent_id: str | None = None  # who sent it (outbound)
    auto_reply: bool = False  # the gateway sent it from an FAQ


PREVIEW_CHARS = 200


@dataclass(frozen=True, slots=True)
class Conversation:
    """One per contact (so per channel): assignment, status and what each agent read."""

    id: str
    contact_id: str
    channel_id: str
    contact: ContactRef
    channel: ChannelRef
    assignee_id: str | None
    status: ConversationStatus
    inbound_count: int  # inbound messages it ever had: what each reader's unread counts from
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime | None = None
    last_message: Preview | None = None
    assigned_at: datetime | None = None
    last_inbound_at: datetime | None = None  # the contact's last message: WhatsApp's window
    handoff_reason: str | None = None  # why its bot gave it to the agents, the last time
    # Who read it (an agent's or token's id), and its inbound_count when they did.
    read_by: Mapping[str, int] = field(default_factory=dict)
    # Agents who gave it back to the queue: not offered it again until it is resolved.
    declined_by: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()  # the team's, to sort and find conversations by

    def unread_for(self, reader: str | None) -> int:
        """Inbound messages ``reader`` has not read; for None, those nobody has."""
        marks = self.read_by
        seen = marks.get(reader, 0) if reader is not None else max(marks.values(), default=0)
        return max(0, self.inbound_count - seen)

    @classmethod
    def of(cls, d: Document) -> Conversation:
        contact, channel, last = d["contact"], d.get("channel") or {}, d.get("last_message")
        return cls(
            id=d["_id"],
            contact_id=d["contact_id"],
            channel_id=d["channel_id"],
            contact=ContactRef(contact["id"], contact["external_id"], contact.get("name", "")),
            channel=ChannelRef(d["channel_id"], channel.get("name", ""), channel.get("type", "")),
            assignee_id=d.get("assignee_id"),
            status=ConversationStatus(d.get("status", "open")),
            inbound_count=d.get("inbound_count", 0),
            created_at=d["created_at"],
            updated_at=d["updated_at"],
            last_message_at=d.get("last_message_at"),
            last_message=Preview(
                last["id"],
                Direction(last["direction"]),
                last["content"],
                Status(last["status"]),
                last.get("agent_id"),
                last.get("auto_reply", False),
            )
            if last
            else None,
            assigned_at=d.get("assigned_at"),
            last_inbound_at=d.get("last_inbound_at"),
            handoff_reason=d.get("handoff_reason"),
            read_by=d.get("read_by") or {},
            declined_by=tuple(d.get("declined_by") or ()),
            labels=tuple(d.get("labels") or ()),
        )


@dataclass(frozen=True, slots=True)
class Note:
    """What agents write in a conversation's thread for each other: never sent to
    the contact, never counted unread."""

    id: str
    conversation_id: str
    agent: AgentRef  # who wrote it
    content: str
    mentions: tuple[str, ...]  # the agents it names as @username, by id
    created_at: datetime

    @classmethod
    def of(cls, d: Document) -> Note:
        return cls(d["_id"], d["conversation_id"], AgentRef.of(d["agent"]), d["content"],
                   tuple(d.get("mentions") or ()), d["created_at"])  # fmt: skip


class EventType(StrEnum):
    MESSAGE_CREATED = "message.created"  # inbound and outbound
    MESSAGE_UPDATED = "message.updated"  # every status change, with the error
    CONVERSATION_UPDATED = "conversation.updated"  # assignment, status, read
    # A subscription failed for the log's whole retention and was disabled; its
    # subject is the subscription (never its secret), and no conversation's.
    SUBSCRIPTION_DISABLED = "subscription.disabled"
    NOTE_CREATED = "note.created"  # a private note in a conversation's thread


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the live event log: what changed, as it was then."""

    id: str  # a UUIDv7: the log's order
    type: EventType
    conversation_id: str
    assignee_id: str | None  # the conversation's, when the event was written
    subject: Message | Conversation | Subscription | Note
    created_at: datetime

    @classmethod
    def of(cls, d: Document) -> Event:
        type_ = EventType(d["type"])
        data = d["data"]
        subject: Message | Conversation | Subscription | Note
        if type_ is EventType.CONVERSATION_UPDATED:
            subject = Conversation.of(data)
        elif type_ is EventType.SUBSCRIPTION_DISABLED:
            subject = Subscription.of(data)
        elif type_ is EventType.NOTE_CREATED:
            subject = Note.of(data)
        else:
            subject = Message.of(data)
        return cls(d["_id"], type_, d["conversation_id"], d.get("assignee_id"), subject,
                   d["created_at"])  # fmt: skip


@dataclass(frozen=True, slots=True)
class Subscription:
    """Another system's outbound webhook: the events it gets, where, and how far
    delivery has come (``cursor``, the id of the last event done with)."""

    id: str
    url: str
    events: frozenset[EventType]
    description: str
    secret: str = field(repr=False)  # signs each delivery; shown once, at creation
    cursor: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    paused: bool = False
    disabled_reason: str | None = None  # set when it failed for the log's whole retention
    failing_since: datetime | None = None  # the first failure since the last 2xx
    last_error: str | None = None
    bot_id: str | None = None  # the bot it feeds: while it fails, the agents answer

    @property
    def active(self) -> bool:
        return not self.paused and self.disabled_reason is None

    @classmethod
    def of(cls, d: Document) -> Subscription:
        return cls(
            id=d["_id"],
            url=d["url"],
            events=frozenset(EventType(e) for e in d["events"]),
            description=d.get("description", ""),
            secret=d["secret"],
            cursor=d["cursor"],
            created_by=d["created_by"],
            created_at=d["created_at"],
            updated_at=d["updated_at"],
            paused=d.get("paused") is True,
            disabled_reason=d.get("disabled_reason"),
            failing_since=d.get("failing_since"),
            last_error=d.get("last_error"),
            bot_id=d.get("bot_id"),
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """One try of one event to one subscription, as its delivery log shows it."""

    id: str
    subscription_id: str
    event_id: str
    event_type: str
    attempt: int  # 1 for the first try of this event
    status: int | None  # the receiver's HTTP status; None when there was no answer
    error: str | None
    duration_ms: int
    created_at: datetime

    @classmethod
    def of(cls, d: Document) -> Delivery:
        return cls(
            id=d["_id"],
            subscription_id=d["subscription_id"],
            event_id=d["event_id"],
            event_type=d["event_type"],
            attempt=d["attempt"],
            status=d.get("status"),
            error=d.get("error"),
            duration_ms=d["duration_ms"],
            created_at=d["created_at"],
        )
