"""The outbox: outbound messages of the ``messages`` collection not yet sent.

The dispatcher keeps a channel's unsent messages in memory while it holds the
channel's lease (gateway/outbound.py); this repository loads them, finds the ones
another gateway queued since, and records claims and outcomes in bulk. Every read
is on the ``channel_outbox`` index, (channel_id, status, list_key), and every
write names messages by id.

A claim is ``status: sending`` with a ``claim`` token, the claiming process and a
deadline (``claimed_until``). Only a write that names the token finishes it.

On the embedded server the data dir admits one gateway (an inherited flock), so no
other process can take a message: there a claim is kept in memory only and a send
costs one write to its message (the outcome), not two. A message being sent then
reads ``queued`` until its outcome is recorded.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pymongo
from pymongo import ASCENDING, UpdateOne

from storage import models
from storage.models import Message
from storage.pages import KEY
from storage.records import Database, utcnow

UNSENT = [s.value for s in models.UNSENT]
LOAD_TIMEOUT_SECONDS = 120  # a whole channel's backlog, read once per lease


@dataclass(frozen=True, slots=True)
class Claim:
    token: str | None  # None: made by a version that kept no token
    owner: str  # the process that made it
    until: datetime | None  # None: made by a version that kept no deadline


@dataclass(frozen=True, slots=True)
class Unsent:
    """An outbound message still to send, as the dispatcher needs it."""

    id: str
    key: str  # list_key: the order of a contact's messages
    channel_id: str
    contact_id: str
    to: str  # the contact's external id on the channel
    content: str
    attempts: int
    next_attempt_at: datetime
    claim: Claim | None = None  # set while another send holds it
    template: dict[str, Any] | None = None  # an approved template, sent instead of content
    media: dict[str, Any] | None = None  # a file, sent with content as its caption

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Unsent:
        claim = None
        if document["status"] == "sending":
            claim = Claim(
                document.get("claim"),
                document.get("claimed_by") or "",
                document.get("claimed_until"),
            )
        return cls(
            id=document["_id"],
            key=document[KEY],
            channel_id=document["channel_id"],
            contact_id=document["contact_id"],
            to=document["contact"]["external_id"],
            content=document["content"],
            attempts=document.get("attempts", 0),
            next_attempt_at=document.get("next_attempt_at") or document["created_at"],
            claim=claim,
            template=document.get("template"),
            media=next(iter((document.get("meta") or {}).get("media") or []), None),
        )

    @classmethod
    def queued(cls, message: Message) -> Unsent:
        """A message just queued: never tried, and its list key is its id."""
        return cls(
            id=message.id,
            key=message.id,
            channel_id=message.channel_id,
            contact_id=message.contact_id,
            to=message.contact.external_id,
            content=message.content,
            attempts=0,
            next_attempt_at=message.created_at,
            template=message.template,
            media=message.media[0] if message.media else None,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a claimed send ended; written only where the claim's token still holds."""

    message_id: str
    token: str
    status: Literal["sent", "queued", "failed"]
    external_id: str = ""
    error: str | None = None
    next_attempt_at: datetime | None = None  # status queued: when to try again
    counted: bool = True  # False: the provider only asked us to wait (not an attempt)


_FIELDS = {KEY: 1, "channel_id": 1, "contact_id": 1, "contact.external_id": 1, "content": 1,
           "attempts": 1, "next_attempt_at": 1, "created_at": 1, "status": 1, "claim": 1,
           "claimed_by": 1, "claimed_until": 1, "template": 1, "meta.media": 1}  # fmt: skip


class OutboxRepository:
    def __init__(self, db: Database, *, sole_writer: bool = False) -> None:
        self.collection = db["messages"]
        self.sole_writer = sole_writer  # no other process can claim: claims stay in memory

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("channel_id", ASCENDING), ("status", ASCENDING), (KEY, ASCENDING)],
            name="channel_outbox",
        )

    @staticmethod
    async def drop_old_indexes(db: Database) -> None:
        """Earlier versions scanned the outbox by due time and each contact's unsent
        messages; nothing reads those indexes any more (a schema step)."""
        messages = db["messages"]
        existing = await messages.index_information()
        for name in ("outbox", "unsent_by_contact"):
            if name in existing:
                await messages.drop_index(name)

    async def unsent(self, channel_id: str) -> list[Unsent]:
        """Every queued or claimed message of a channel, oldest first."""
        with pymongo.timeout(LOAD_TIMEOUT_SECONDS):
            documents = (
                await self.collection.find(
                    {"channel_id": channel_id, "status": {"$in": UNSENT}}, projection=_FIELDS
                )
                .sort(KEY, ASCENDING)
                .to_list()
            )
        return [Unsent.from_document(d) for d in documents]

    async def queued_since(self, channel_id: str, floor: str) -> list[str]:
        """Ids of the channel's queued messages whose key is ``floor`` or later."""
        found = self.collection.find(
            {"channel_id": channel_id, "status": "queued", KEY: {"$gte": floor}},
            projection={"_id": 1},
        )
        return [d["_id"] async for d in found]

    async def get_unsent(self, ids: list[str]) -> list[Unsent]:
        """Those of ``ids`` still queued or claimed, oldest first."""
        found = self.collection.find(
            {"_id": {"$in": ids}, "status": {"$in": UNSENT}}, projection=_FIELDS
        )
        return sorted([Unsent.from_document(d) async for d in found], key=lambda u: u.key)

    async def claim(self, ids: list[str], owner: str, until: datetime) -> tuple[str, set[str]]:
        """Take the queued ones of ``ids`` for sending, in one write.

        Returns the claim's token and the ids it took: all of them, unless something
        changed a message behind our back (then one read says which).
        """
        token = uuid.uuid4().hex
        if self.sole_writer:
            return token, set(ids)
        result = await self.collection.update_many(
            {"_id": {"$in": ids}, "status": "queued"},
            {
                "$set": {
                    "status": "sending",
                    "claim": token,
                    "claimed_by": owner,
                    "claimed_until": until,
                    "updated_at": utcnow(),
                },
                "$inc": {"attempts": 1},
            },
        )
        if result.modified_count == len(ids):
            return token, set(ids)
        taken = self.collection.find({"_id": {"$in": ids}, "claim": token}, projection={"_id": 1})
        return token, {d["_id"] async for d in taken}

    async def finish(self, outcomes: list[Outcome]) -> None:
        """Record outcomes; each applies only under its own claim.

        Outcomes of one claim that end alike go in one update (the embedded server
        updates many documents in one command about twice as fast as one by one),
        each document taking its own provider id, error and retry time.

        A status callback may have overtaken a send (delivered, read, failed): then
        the claim no longer matches, the callback's status stays, and the callback has
        recorded the provider's id itself.
        """
        groups: dict[tuple[str, str, bool], list[Outcome]] = {}
        for o in outcomes:
            groups.setdefault((o.token, o.status, o.counted), []).append(o)
        for (token, status, counted), group in groups.items():
            ids = [o.message_id for o in group]

            def each(values: list[Any], ids: list[str] = ids) -> dict[str, Any]:
                # This document's own value: the one at its id's place in ``ids``.
                at = {"$indexOfArray": [{"$literal": ids}, "$_id"]}
                return {"$arrayElemAt": [{"$literal": values}, at]}

            changes: dict[str, Any] = {
                "status": {"$literal": status},
                "error": each([o.error for o in group]),
                "updated_at": {"$literal": utcnow()},
                # A missing provider id (None) keeps the one a callback recorded.
                "external_id": {
                    "$ifNull": [each([o.external_id or None for o in group]), "$external_id"]
                },
            }
            if status == "queued":
                changes["next_attempt_at"] = each([o.next_attempt_at for o in group])
            # A claim written to the message counted the attempt already.
            step = int(counted) if self.sole_writer else int(counted) - 1
            if step:
                changes["attempts"] = {"$add": [{"$ifNull": ["$attempts", 0]}, step]}
            mine: dict[str, Any] = {"_id": {"$in": ids}}
            mine |= (
                {"status": "queued"} if self.sole_writer else {"claim": token, "status": "sending"}
            )
            await self.collection.update_many(mine, [{"$set": changes}])

    async def release(self, claims: list[tuple[str, str | None]]) -> None:
        """Put messages whose claims ``(id, token)`` expired back in the queue."""
        writes = [
            UpdateOne(
                {"_id": message_id, "status": "sending", "claim": token},
                {
                    "$set": {"status": "queued", "updated_at": utcnow()},
                    "$unset": {"claim": "", "claimed_by": "", "claimed_until": ""},
                },
            )
            for message_id, token in claims
        ]
        if writes:
            await self.collection.bulk_write(writes, ordered=False)

    async def depth(self, channel_ids: list[str]) -> int:
        """The channels' outbound messages not yet sent (queued or being sent)."""
        total = 0
        for channel_id in channel_ids:  # one index range each; a status alone has none
            unsent = {"channel_id": channel_id, "status": {"$in": UNSENT}}
            total += await self.collection.count_documents(unsent)
        return total
