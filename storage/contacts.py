"""The ``contacts`` collection: the people who write to our bots."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.errors import BulkWriteError

from storage.lists import Page, Position
from storage.models import Contact, conversation_id
from storage.pages import KEY, PageReader
from storage.records import (
    Collection,
    Database,
    Document,
    derived_id,
    duplicates,
    maybe,
    new_id,
    upsert_all,
    utcnow,
)
from storage.search import search_text, words

WORDS = "words"  # the index ?q= looks contacts up by; made once every contact has them
BACKFILL_BATCH = 1000


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
    """A sighting's empty name or username keeps the stored one."""
    fields = _new_document(sighting, seen_at)
    del fields["_id"]
    seen = {"last_message_at": fields.pop("last_message_at")}
    given = {k: fields.pop(k) for k in ("name", "username") if fields[k]}
    return UpdateOne(
        {"_id": sighting.contact_id},
        {"$set": given, "$max": seen, "$setOnInsert": fields},
        upsert=True,
    )


def _new_document(sighting: Sighting, seen_at: datetime) -> dict[str, Any]:
    return {
        "_id": sighting.contact_id,
        "channel_id": sighting.channel_id,
        "external_id": sighting.external_id,
        "name": sighting.name,
        "username": sighting.username,
        "created_at": seen_at,
        KEY: new_id(seen_at),
        "last_message_at": seen_at,
        "conversation_id": conversation_id(sighting.contact_id),  # what a search joins
        "words": words(sighting.name, sighting.username, sighting.external_id),
    }


class ContactsRepository:
    def __init__(self, db: Database, pages: PageReader) -> None:
        self.collection = db["contacts"]
        self.conversations = db["conversations"]
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
        await self.collection.create_index([("words", ASCENDING)], name=WORDS)

    @staticmethod
    async def reword_everyone(db: Database) -> None:
        """Give every contact the words search finds it by now, and its conversation
        the words' text (a schema step, storage/schema.py); idempotent."""
        contacts, conversations = db["contacts"], db["conversations"]
        found = contacts.find({}, projection={KEY: 0, "last_message_at": 0})
        batch: list[Contact] = []
        async for document in found:
            batch.append(Contact.of(document))
            if len(batch) == BACKFILL_BATCH:
                await _reword_all(contacts, conversations, batch)
                batch = []
        await _reword_all(contacts, conversations, batch)

    async def record_seen_many(
        self,
        sightings: list[Sighting],
        seen_at: datetime | None = None,
        *,
        unknown: frozenset[str] = frozenset(),
    ) -> dict[str, Contact]:
        """Create or refresh several contacts in bulk; returns them by id.

        A contact may change their display name between messages: the profile
        follows the latest sighting instead of failing on the unique key. Those
        whose ids are in ``unknown`` (the caller has not seen them) are inserted
        first: an insert costs the embedded server a third of an upsert, and what it
        stored needs no read back. Any that existed after all are upserted.
        """
        seen_at = seen_at or utcnow()
        latest = {s.contact_id: s for s in sightings}  # one write per contact
        new = [s for s in latest.values() if s.contact_id in unknown]
        inserted = await self._insert_new(new, seen_at)
        rest = [s for cid, s in latest.items() if cid not in inserted]
        if not rest:
            return inserted
        await upsert_all(self.collection, [_upsert(s, seen_at) for s in rest])
        found = self.collection.find({"_id": {"$in": [s.contact_id for s in rest]}})
        stored = [document async for document in found]
        await self._reword(stored)
        self.pages.newest.wrote(self.collection.name, [d[KEY] for d in stored])
        return inserted | {document["_id"]: Contact.of(document) for document in stored}

    async def _reword(self, documents: list[Document]) -> None:
        """Store the words of those whose name or username changed (a sighting's empty
        field keeps the stored one, so only the stored contact tells its words)."""
        writes = [
            UpdateOne({"_id": d["_id"]}, {"$set": {"words": found}})
            for d in documents
            if d.get("words") != (found := Contact.of(d).words)
        ]
        if writes:
            await self.collection.bulk_write(writes, ordered=False)

    async def _insert_new(self, sightings: list[Sighting], seen_at: datetime) -> dict[str, Contact]:
        """Insert contacts believed new; returns those that were (a duplicate key: it was not)."""
        if not sightings:
            return {}
        documents = [_new_document(s, seen_at) for s in sightings]
        failed: set[int] = set()
        try:
            await self.collection.insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            failed = duplicates(exc)
        stored = [d for n, d in enumerate(documents) if n not in failed]
        self.pages.newest.wrote(self.collection.name, [d[KEY] for d in stored])
        return {d["_id"]: Contact.of(d) for d in stored}

    async def get(self, contact_id_: str) -> Contact | None:
        document = await self.collection.find_one({"_id": contact_id_})
        return maybe(Contact.of, document)

    async def set_attributes(self, contact_id_: str, attributes: dict[str, str]) -> bool:
        """Its attributes become ``attributes``; False if there is no such contact."""
        done = await self.collection.update_one(
            {"_id": contact_id_}, {"$set": {"attributes": attributes}}
        )
        return done.matched_count == 1

    async def shown(self, contact_id_: str) -> Contact | None:
        """The contact as agents see it: :meth:`get` with its assignee."""
        found = await self.get(contact_id_)
        return None if found is None else (await self._with_assignees([found]))[0]

    async def _with_assignees(self, contacts: list[Contact]) -> list[Contact]:
        """A contact shows its conversation's assignee, read from there: so an
        assignment writes one document, the conversation."""
        ids = [conversation_id(c.id) for c in contacts]
        found = self.conversations.find({"_id": {"$in": ids}}, projection={"assignee_id": 1})
        assignees = {d["_id"]: d.get("assignee_id") async for d in found}
        return [
            dataclasses.replace(c, assigned_agent_id=assignees.get(i))
            for c, i in zip(contacts, ids, strict=True)
        ]

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
        page = await self.pages.fetch(self.collection, Contact.of, query, after, limit)
        return Page(await self._with_assignees(page.items), page.next)


async def _reword_all(
    contacts: Collection, conversations: Collection, batch: list[Contact]
) -> None:
    if not batch:
        return
    await contacts.bulk_write(
        [
            UpdateOne(
                {"_id": c.id},
                {"$set": {"words": c.words, "conversation_id": conversation_id(c.id)}},
            )
            for c in batch
        ],
        ordered=False,
    )
    texts = {conversation_id(c.id): search_text(c.words) for c in batch}
    await conversations.bulk_write(
        [UpdateOne({"_id": i}, {"$set": {"search": text}}) for i, text in texts.items()],
        ordered=False,
    )
