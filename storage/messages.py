"""The ``messages`` collection: inbound and outbound messages, the outbox and expiry.

A message carries a summary of its contact ``{id, external_id, name}`` and agent
``{id, username}`` as they were when it was written (``ContactRef``, ``AgentRef``),
so a page of messages is one query with no joins.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import BulkWriteError, DuplicateKeyError

from storage.conversations import ConversationsRepository
from storage.errors import DuplicateKey, Refused
from storage.lists import Page, Position
from storage.models import AgentRef, Contact, Direction, Message, Status
from storage.models import conversation_id as storage_conversation_id
from storage.pages import KEY, MAX_WINDOWS, PageReader, ReadPlan
from storage.records import (
    Database,
    ensure_expiry,
    key_floor,
    maybe,
    millis,
    new_id,
    update_returning,
    utcnow,
)

log = logging.getLogger("gateway.storage")

FILTER_INDEXES = {  # name: the equality before list_key
    "contact_key": "contact_id",
    "agent_key": "agent_id",
    "status_key": "status",
    "direction_key": "direction",
}
# A combination's page looks up the first of its fields here (storage/pages.py): a
# contact's messages are one conversation's, a rare status's are few.
LEADS = ("contact_id", "status", "agent_id", "direction")
# An agent with at most this many pages' worth of conversations whose newest messages
# rarely match a filter has their messages looked up by contact: fewer to read than
# every match of the filter, whose index leads otherwise (the filter is rare then).
FEW_CONVERSATIONS = 4


def _contact_summary(contact: Contact) -> dict[str, Any]:
    return {"id": contact.id, "external_id": contact.external_id, "name": contact.name}


def _message(
    contact: Contact,
    agent: AgentRef | None,
    direction: Direction,
    status: Status,
    content: str,
    at: datetime | None,
    extra: dict[str, Any] | None,
    **fields: Any,
) -> dict[str, Any]:
    """What every stored message has: ids from its time, its contact and agent inline;
    ``fields`` add to it or replace (an inbound message names its channel)."""
    now = at or utcnow()
    key = new_id(now)
    return {
        "_id": key,
        KEY: key,
        "channel_id": contact.channel_id,
        "contact_id": contact.id,
        "contact": _contact_summary(contact),
        "agent_id": agent.id if agent else None,
        "agent": agent.stored() if agent else None,
        "direction": direction.value,
        "content": content,
        "status": status.value,
        "created_at": now,
        "updated_at": now,
        **fields,
        **(extra or {}),
    }


def inbound_document(
    *,
    channel_id: str,
    contact: Contact,
    dedupe_key: str,
    content: str,
    external_id: str = "",
    extra: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """The stored shape of an inbound message; ``dedupe_key`` makes it unique."""
    return _message(
        contact, None, Direction.IN, Status.RECEIVED, content, at, extra,
        channel_id=channel_id, dedupe_key=dedupe_key, external_id=external_id,
    )  # fmt: skip


def outbound_document(
    *,
    contact: Contact,
    content: str,
    agent: AgentRef | None,
    extra: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """The stored shape of an outbound message, ``queued`` and due at once."""
    document = _message(
        contact, agent, Direction.OUT, Status.QUEUED, content, at, extra,
        external_id="", error=None, attempts=0,
    )  # fmt: skip
    document["next_attempt_at"] = document["created_at"]
    return document


@dataclass(frozen=True)
class MessageFilters:
    """What a list of messages may ask for: the API's filters."""

    conversation_id: str | None = None
    assignee_id: str | None = None  # the messages of that agent's conversations
    contact_id: str | None = None
    agent_id: str | None = None  # who sent them
    direction: Direction | None = None
    status: Status | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass
class _Scope:
    """What the conversations tell of a page of messages before it is read."""

    one_query: bool  # look the matches up, no window: few match, or a trip was spent
    contact_ids: list[str] | None = None  # None: anyone's; []: nobody's, an empty page
    holds_a_page: str | None = None  # a key from which on the page lies
    by_contacts: bool = False  # led by the contacts' index, not the filters'


class MessagesRepository:
    def __init__(
        self, db: Database, pages: PageReader, conversations: ConversationsRepository
    ) -> None:
        self.db = db
        self.collection = db["messages"]
        self.pages = pages
        self.conversations = conversations  # whose contacts an agent's or a conversation's are
        self.retention_seconds = 30 * 86400  # set by ensure_indexes

    async def ensure_indexes(self, retention_seconds: int, *, server_expires: bool = True) -> None:
        """Create every index the queries need, and what expires old messages.

        With ``server_expires`` a TTL index has the server delete them. The embedded
        server answers a TTL index by decoding every document of the collection once
        a minute under its global lock (1.6 s per 100,000 messages, with every
        request waiting), so there a plain index serves :meth:`expire` instead.
        """
        self.retention_seconds = retention_seconds
        c = self.collection
        # Newest-first pages of everything and of each filter alone, which read
        # their matches only (storage/pages.py; list_key equals _id here). A
        # combination's compound indexes would cost every write more than they save:
        # the embedded server rewrites every index entry of a message at each status
        # change (measured: four more indexes made a send 38 ms instead of 27).
        await c.create_index([(KEY, ASCENDING)], name=KEY)
        for name, field in FILTER_INDEXES.items():
            await c.create_index([(field, ASCENDING), (KEY, ASCENDING)], name=name)
        # A provider's retry of an inbound message hits this and is acknowledged, not
        # stored twice. Outbound messages have no dedupe_key and are not indexed here.
        await c.create_index(
            [("channel_id", ASCENDING), ("dedupe_key", ASCENDING)],
            unique=True,
            partialFilterExpression={"dedupe_key": {"$type": "string"}},
            name="inbound_dedupe",
        )
        # An agent's retried POST with the same Idempotency-Key finds its message.
        await c.create_index(
            [("agent_id", ASCENDING), ("idempotency_key", ASCENDING)],
            unique=True,
            partialFilterExpression={"idempotency_key": {"$type": "string"}},
            name="outbound_idempotency",
        )
        if await ensure_expiry(c, retention_seconds, server_expires=server_expires, by_key=True):
            log.info("message retention changed to %s s", retention_seconds)

    async def insert_inbound_many(self, documents: list[dict[str, Any]]) -> list[bool | Refused]:
        """Store inbound messages (from :func:`inbound_document`) in one bulk write.

        Returns, for each, whether it was stored now: False for a repeat of a
        ``dedupe_key`` already stored, or earlier in the same list; :class:`Refused`
        for one the server would not store (the others are stored all the same).
        """
        created: list[bool | Refused] = [True] * len(documents)
        try:
            await self.collection.insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                duplicate = error["code"] == 11000
                created[error["index"]] = False if duplicate else Refused(error.get("errmsg", ""))
        stored = [d[KEY] for d, new in zip(documents, created, strict=True) if new is True]
        self.pages.newest.wrote(self.collection.name, stored)
        return created

    async def insert_outbound(
        self,
        *,
        contact: Contact,
        content: str,
        agent: AgentRef | None,
        extra: dict[str, Any] | None = None,
        idempotency: tuple[str, str] | None = None,
    ) -> tuple[Message, bool]:
        """Store an outbound message as ``queued``: it is stored before it is sent.

        ``idempotency`` is an Idempotency-Key and the request's fingerprint: with a key
        the same agent used already, the earlier message comes back with
        ``created=False`` if its request had the same fingerprint; :class:`DuplicateKey`
        if it had another.
        """
        document = outbound_document(contact=contact, content=content, agent=agent, extra=extra)
        if idempotency is not None:
            document["idempotency_key"], document["request_fingerprint"] = idempotency
        try:
            await self.collection.insert_one(document)
        except DuplicateKeyError:
            if idempotency is None:
                raise
            unique = {"agent_id": document["agent_id"], "idempotency_key": idempotency[0]}
            stored = await self.collection.find_one(unique)
            if stored is None:  # expired between the two calls; nothing left to match
                raise
            if stored.get("request_fingerprint") not in (None, idempotency[1]):
                raise DuplicateKey("the Idempotency-Key was used for another request") from None
            return Message.of(stored), False
        self.pages.newest.wrote(self.collection.name, [document[KEY]])
        return Message.of(document), True

    async def get(self, message_id: str) -> Message | None:
        document = await self.collection.find_one({"_id": message_id})
        return maybe(Message.of, document)

    async def media_ref(
        self, message_id: str, index: int
    ) -> tuple[str, str, dict[str, Any]] | None:
        """``(channel_id, ref, item)`` of a message's ``index``th media that has a file:
        the provider's handle (file_id, URL) the API never shows, or "" for an agent's
        upload (the item names it)."""
        document = await self.collection.find_one(
            {"_id": message_id}, projection={"channel_id": 1, "meta.media": 1}
        )
        if document is None:
            return None
        listed = (document.get("meta") or {}).get("media") or []
        if not 0 <= index < len(listed) or not (listed[index].keys() & {"ref", "upload"}):
            return None
        item = listed[index]
        return str(document["channel_id"]), str(item.get("ref", "")), item

    async def list_page(
        self, after: Position | None, limit: int, filters: MessageFilters
    ) -> Page[Message]:
        """Newest first; each filter narrows the page, and a page is one or two
        queries (one on MongoDB), rarely three (storage/pages.py).
        ``conversation_id`` and ``assignee_id`` (the messages of that agent's
        conversations) come down to contacts: a conversation is one contact's,
        found in one read before the page, whose messages are then looked up.
        One conversation's messages are few enough to look up. An agent's first page
        finds its bound in their conversations' previews: the newest ``limit + 1``
        showing a match (any message, with no other filter) each have one at or after
        the last one's key, and no other conversation has a message there, so that key
        bounds the page's window (storage/pages.py). If fewer show one, no window: their
        messages if they have few conversations, else the filter's matches. One
        contact of the agent's needs only its conversation read."""
        scope = await self._scope(after, limit, filters)
        if scope.contact_ids == []:
            return Page([], None)
        # An inbound message is always received and sent by nobody: a status or an
        # agent decides the direction, so the query needs at most one of the three.
        direction, status, agent_id = filters.direction, filters.status, filters.agent_id
        implied = Direction.OUT if agent_id is not None else _direction_of(status)
        if implied is not None:
            if direction not in (None, implied) or _direction_of(status) not in (None, implied):
                return Page([], None)
            direction = None
        query: dict[str, Any] = {}
        allowed = None
        contact_ids = scope.contact_ids
        if contact_ids is not None and len(contact_ids) == 1:
            query["contact_id"] = contact_ids[0]
        elif contact_ids is not None and scope.by_contacts:
            query["contact_id"] = {"$in": sorted(contact_ids)}
        elif contact_ids is not None:  # an agent's: checked by the reader (storage/pages.py)
            allowed = ("contact_id", frozenset(contact_ids))
        for name, value in (("agent_id", agent_id), ("direction", direction), ("status", status)):
            if value is not None:
                query[name] = str(value)
        plan = ReadPlan(
            newer_than=filters.created_after,
            older_than=filters.created_before,
            covered=len(query) <= 1,
            lead=next((f for f in LEADS if f in query), None),
            horizon=utcnow() - timedelta(seconds=self.retention_seconds),
            holds_a_page=scope.holds_a_page,
            allowed=allowed,
            # None: the matches are few, or a trip was spent; one: the conversations' was.
            windows=0 if scope.one_query else 1 if filters.assignee_id is not None else MAX_WINDOWS,
        )
        return await self.pages.fetch(self.collection, Message.of, query, after, limit, plan)

    async def _scope(self, after: Position | None, limit: int, filters: MessageFilters) -> _Scope:
        """Which contacts' messages a page may hold (None: anyone's), read from the
        conversations, and what that tells about reading the page."""
        conversation_id, assignee_id = filters.conversation_id, filters.assignee_id
        contact_id = filters.contact_id
        if conversation_id is None and assignee_id is not None and contact_id is not None:
            conversation_id = storage_conversation_id(contact_id)  # that one, if theirs
        scope = _Scope(one_query=conversation_id is not None)
        if conversation_id is not None:
            found = await self.conversations.get(conversation_id)
            mine = found is not None and assignee_id in (None, found.assignee_id)
            scope.contact_ids = [found.contact_id] if found is not None and mine else []
        elif assignee_id is not None:
            activity = await self.conversations.activity_of(assignee_id)
            scope.contact_ids = [c.contact_id for c in activity]
            wanted = {
                "agent_id": filters.agent_id,
                "direction": filters.direction,
                "status": filters.status,
            }
            shown = {name: str(value) for name, value in wanted.items() if value is not None}
            matching = [c.key for c in activity if c.matches(shown)]
            first_page = after is None and filters.created_before is None
            if first_page and len(matching) > limit:
                scope.holds_a_page = matching[limit]  # a match each at or after it
            elif first_page:  # one query, no window: theirs if few, else the filter's
                scope.one_query = True
                scope.by_contacts = len(activity) <= FEW_CONVERSATIONS * limit
        if contact_id is not None:
            known = scope.contact_ids
            scope.contact_ids = [contact_id] if known is None or contact_id in known else []
        return scope

    # -- FAQ auto-replies -----------------------------------------------------------

    async def sent_faq_since(self, contact_id: str, faq_id: str, since: datetime) -> bool:
        """Whether the contact got this FAQ's auto-reply since ``since``."""
        found = await self.collection.find_one(
            {
                "contact_id": contact_id,
                KEY: {"$gte": key_floor(millis(since))},
                "direction": Direction.OUT.value,
                "faq_id": faq_id,
            },
            projection={"_id": 1},
        )
        return found is not None

    # -- delivery status ---------------------------------------------------------------

    async def apply_status(
        self,
        channel_id: str,
        message_id: str,
        status: Status,
        *,
        external_id: str = "",
        error: str | None = None,
    ) -> Message | None:
        """Record a provider's status report on one of the channel's messages.

        Only a message of that channel, whose provider id is ``external_id`` or not
        recorded yet (the report may overtake our own record of the send), and only
        forward: a late "delivered" cannot undo "read". Returns the message moved.
        """
        query: dict[str, Any] = {
            "_id": message_id,
            "channel_id": channel_id,
            "direction": Direction.OUT.value,
            "status": {"$in": [s.value for s in status.follows()]},
        }
        changes: dict[str, Any] = {"status": status.value, "updated_at": utcnow()}
        if external_id:
            query["external_id"] = {"$in": ["", external_id]}
            changes["external_id"] = external_id
        if error is not None:
            changes["error"] = error
        document = await update_returning(self.collection, query, {"$set": changes})
        return maybe(Message.of, document)

    async def get_many(self, ids: list[str]) -> list[Message]:
        found = self.collection.find({"_id": {"$in": ids}})
        return [Message.of(d) async for d in found]


def _direction_of(status: Status | None) -> Direction | None:
    if status is None:
        return None
    return Direction.IN if status == Status.RECEIVED else Direction.OUT
