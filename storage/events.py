"""The ``events`` collection: the live event log agents' streams read and resume from.

Entries are written in id order by one writer per process (gateway/events.py holds
the lock), each a snapshot of the message or conversation as it was. ``list_key``
equals the id, indexed: the embedded server uses no ``_id`` index for ranges.
Entries expire after the retention (a TTL index, or the sweeper on the embedded
server, as for messages).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from pymongo import ASCENDING

from storage.models import Conversation, Event, EventType, Message, Note, Subscription
from storage.pages import KEY
from storage.records import (
    Database,
    ensure_expiry,
    key_millis,
    millis,
    new_id,
    quick,
    utcnow,
)

_SCALARS = (str, int, float, datetime, type(None))
# An event's id (a UUIDv7), or a position between ids (storage.records.key_floor: where
# a subscription made before any event starts).
_EVENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _plain(value: Any) -> Any:
    """A model as BSON takes it: dataclasses as dicts, enums as their values. No copy
    of what needs none (the models are frozen): ``dataclasses.asdict`` deep-copies
    every field, a fifth of an event's cost on the inbound path."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _plain(getattr(value, name)) for name in _fields(type(value))}
    return value


@functools.cache
def _fields(model: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(model))


class EventsRepository:
    def __init__(self, db: Database) -> None:
        self.collection = db["events"]
        self.writes = quick(self.collection)
        self.retention_seconds = 48 * 3600

    async def ensure_indexes(self, retention_seconds: int, *, server_expires: bool) -> None:
        self.retention_seconds = retention_seconds
        c = self.collection
        await c.create_index([(KEY, ASCENDING)], name=KEY)
        await ensure_expiry(c, retention_seconds, server_expires=server_expires, by_key=True)

    async def append(
        self,
        entries: list[tuple[EventType, str | None, Message | Conversation | Subscription | Note]],
    ) -> list[Event]:
        """Write ``(type, assignee, subject)`` entries in one insert, in order."""
        if not entries:
            return []
        now = utcnow()
        documents, events = [], []
        for type_, assignee_id, subject in entries:
            key = new_id(now)
            if isinstance(subject, Conversation):
                conversation_id = subject.id
            elif isinstance(subject, Message | Note):
                conversation_id = subject.conversation_id
            else:  # a subscription's: no conversation's
                conversation_id = ""
            data = _plain(subject)
            data["_id"] = subject.id
            events.append(Event(key, type_, conversation_id, assignee_id, subject, now))
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
        return events  # the subjects themselves: what Event.of would read back

    async def after(self, key: str, limit: int, *, before: str | None = None) -> list[Event]:
        """The entries after ``key`` (an event id), and before ``before``, oldest first."""
        bounds = {"$gt": key, **({"$lt": before} if before else {})}
        found = self.collection.find({KEY: bounds}).sort(KEY, ASCENDING).limit(limit)
        return [Event.of(d) async for d in found]

    async def keys_after(self, key: str, limit: int, *, before: str) -> list[str]:
        """The ids of the entries after ``key`` and before ``before``, oldest first:
        what a tail reads when it holds most of the entries themselves already."""
        bounds = {"$gt": key, "$lt": before}
        found = self.collection.find({KEY: bounds}, projection={"_id": 1})
        return [d["_id"] async for d in found.sort(KEY, ASCENDING).limit(limit)]

    async def get_many(self, ids: list[str]) -> list[Event]:
        """These entries, oldest first (those that expired meanwhile left out)."""
        found = self.collection.find({"_id": {"$in": ids}}).sort(KEY, ASCENDING)
        return [Event.of(d) async for d in found]

    def kept(self, event_id: str) -> bool:
        """Whether ``event_id`` is an event id (a UUIDv7) the log may still hold: one
        a stream may resume from, or a subscription replay from."""
        return _EVENT_ID.fullmatch(event_id) is not None and key_millis(event_id) >= millis(
            self.horizon()
        )

    def horizon(self) -> datetime:
        """Events older than this may be gone: a resume from before it is a reset."""
        return utcnow() - timedelta(seconds=self.retention_seconds)
