"""The ``events`` collection: the live event log agents' streams read and resume from.

Entries are written in id order by one writer per process (gateway/events.py holds
the lock), each a snapshot of the message or conversation as it was. ``list_key``
equals the id, indexed: the embedded server uses no ``_id`` index for ranges.
Entries expire after the retention (a TTL index, or the sweeper on the embedded
server, as for messages).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from pymongo import ASCENDING

from storage.models import Conversation, Event, EventType, Message
from storage.pages import KEY
from storage.records import Database, ensure_expiry, expire_before, new_id, quick, utcnow


def _plain(value: Any) -> Any:
    """A model's fields as BSON takes them: enums as their values."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class EventsRepository:
    def __init__(self, db: Database) -> None:
        self.collection = db["events"]
        self.writes = quick(self.collection)
        self.retention_seconds = 48 * 3600

    async def ensure_indexes(self, retention_seconds: int, *, server_expires: bool) -> None:
        self.retention_seconds = retention_seconds
        c = self.collection
        await c.create_index([(KEY, ASCENDING)], name=KEY)
        await ensure_expiry(c, retention_seconds, server_expires=server_expires)

    async def append(
        self, entries: list[tuple[EventType, str | None, Message | Conversation]]
    ) -> list[Event]:
        """Write ``(type, assignee, subject)`` entries in one insert, in order."""
        if not entries:
            return []
        now = utcnow()
        documents = []
        for type_, assignee_id, subject in entries:
            key = new_id(now)
            conversation_id = (
                subject.id if isinstance(subject, Conversation) else subject.conversation_id
            )
            data = _plain({**dataclasses.asdict(subject), "_id": subject.id})
            documents.append(
                {
                    "_id": key,
                    KEY: key,
                    "type": type_.value,
                    "conversation_id": conversation_id,
                    "assignee_id": assignee_id,
                    "data": data,
                    "created_at": now,
                }
            )
        await self.writes.insert_many(documents, ordered=True)
        return [Event.of(d) for d in documents]

    async def after(self, key: str, limit: int, *, before: str | None = None) -> list[Event]:
        """The entries after ``key`` (an event id), and before ``before``, oldest first."""
        bounds = {"$gt": key, **({"$lt": before} if before else {})}
        found = self.collection.find({KEY: bounds}).sort(KEY, ASCENDING).limit(limit)
        return [Event.of(d) async for d in found]

    async def expire(self) -> int:
        return await expire_before(self.collection, self.retention_seconds)

    def horizon(self) -> datetime:
        """Events older than this may be gone: a resume from before it is a reset."""
        return utcnow() - timedelta(seconds=self.retention_seconds)
