"""The ``contacts`` collection: the people who write to our bots."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.errors import BulkWriteError

from storage.models import Contact
from storage.pages import KEY, Page, PageReader, Position
from storage.records import BY_ID, Database, derived_id, maybe, new_id, utcnow


def contact_id(channel_id: str, external_id: str) -> str:
    """Contacts have derived ids, so the inbound path can write without reading."""
    return derived_id("contact", channel_id, external_id)


@dataclass(frozen=True)
class Sighting:
    """A contact as one inbound message shows them; empty fields keep stored values."""

    channel_id: str
    external_id: str
    name: str = ""
    username: str = ""

    @cached_property
    def contact_id(self) -> str:
        return contact_id(self.channel_id, self.external_id)


def _upsert(sighting: Sighting, seen_at: datetime) -> UpdateOne:
    given = {"name": sighting.name, "username": sighting.username}
    return UpdateOne(
        {"_id": sighting.contact_id},
        {
            "$set": {k: v for k, v in given.items() if v},
            "$max": {"last_message_at": seen_at},
            "$setOnInsert": {
                **{k: v for k, v in given.items() if not v},
                "channel_id": sighting.channel_id,
                "external_id": sighting.external_id,
                "assigned_agent_id": None,
                "created_at": seen_at,
                KEY: new_id(seen_at),
            },
        },
        upsert=True,
    )


class ContactsRepository:
    def __init__(self, db: Database, pages: PageReader) -> None:
        self.collection = db["contacts"]
        self.pages = pages

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("channel_id", ASCENDING), ("external_id", ASCENDING)],
            unique=True,
            name="channel_external_unique",
        )
        # Contact ids are derived, not time-ordered: list_key is a UUIDv7 set when
        # the contact is first seen.
        await self.collection.create_index([(KEY, ASCENDING)], name=KEY)
        await self.collection.create_index(
            [("channel_id", ASCENDING), (KEY, ASCENDING)], name="channel_list_key"
        )

    async def record_seen_many(
        self, sightings: list[Sighting], seen_at: datetime | None = None
    ) -> dict[str, Contact]:
        """Create or refresh several contacts in one bulk write; returns them by id.

        A contact may change their display name between messages: the profile
        follows the latest sighting instead of failing on the unique key.
        """
        seen_at = seen_at or utcnow()
        latest = {s.contact_id: s for s in sightings}  # one write per contact
        writes = [_upsert(s, seen_at) for s in latest.values()]
        try:
            await self.collection.bulk_write(writes, ordered=False)
        except BulkWriteError as exc:
            # Two writers creating the same contact at once: the loser's upsert hits
            # the unique _id; run again, it is a plain update now.
            # https://www.mongodb.com/docs/manual/reference/method/db.collection.updateOne/#upsert-with-duplicate-values
            errors = exc.details.get("writeErrors", [])
            if not errors or any(e["code"] != 11000 for e in errors):
                raise
            await self.collection.bulk_write([writes[e["index"]] for e in errors], ordered=False)
        stored = self.collection.find({"_id": {"$in": list(latest)}})
        return {document["_id"]: Contact.of(document) async for document in stored}

    async def set_assignees(self, pairs: list[tuple[str, str | None]]) -> None:
        """Each contact ``(id, agent id or None)``: the assignee of its conversation,
        shown on the contact too."""
        writes = [
            UpdateOne({"_id": cid}, {"$set": {"assigned_agent_id": agent}}, hint=BY_ID)
            for cid, agent in pairs
        ]
        if writes:
            await self.collection.bulk_write(writes, ordered=False)

    async def get(self, contact_id_: str) -> Contact | None:
        document = await self.collection.find_one({"_id": contact_id_})
        return maybe(Contact.of, document)

    async def list_page(
        self, after: Position | None, limit: int, *, channel_id: str | None = None, q: str = ""
    ) -> Page[Contact]:
        """Newest contacts first; ``q`` matches name or username, case-insensitively."""
        query: dict[str, Any] = {}
        if channel_id is not None:
            query["channel_id"] = channel_id
        if q:
            pattern = {"$regex": re.escape(q), "$options": "i"}
            query["$or"] = [{"name": pattern}, {"username": pattern}]
        return await self.pages.fetch(self.collection, Contact.of, query, after, limit)
