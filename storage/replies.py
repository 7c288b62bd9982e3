"""The ``replies`` collection: the team's saved replies, each found by its shortcut."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from storage.errors import DuplicateKey
from storage.lists import Page, Position
from storage.models import SavedReply
from storage.pages import KEY, PageReader
from storage.records import Database, maybe, new_id, update_returning, utcnow


class RepliesRepository:
    def __init__(self, db: Database, pages: PageReader) -> None:
        self.collection = db["replies"]
        self.pages = pages

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([(KEY, ASCENDING)], name=KEY)
        await self.collection.create_index([("shortcut", ASCENDING)], name="shortcut", unique=True)

    async def create(self, shortcut: str, text: str, created_by: str) -> SavedReply:
        """:class:`DuplicateKey` if another has the shortcut."""
        now = utcnow()
        key = new_id(now)
        document = {"_id": key, KEY: key, "shortcut": shortcut, "text": text,
                    "created_by": created_by, "created_at": now, "updated_at": now}  # fmt: skip
        try:
            await self.collection.insert_one(document)
        except DuplicateKeyError:
            raise DuplicateKey(f"shortcut {shortcut!r} is taken") from None
        return SavedReply.of(document)

    async def get(self, reply_id: str) -> SavedReply | None:
        return maybe(SavedReply.of, await self.collection.find_one({"_id": reply_id}))

    async def list_page(
        self, after: Position | None, limit: int, prefix: str = ""
    ) -> Page[SavedReply]:
        """Newest first; with ``prefix``, those whose shortcut starts with it."""
        query: dict[str, Any] = {}
        if prefix:  # shortcuts are [a-z0-9_-]: the range holds every longer one
            query["shortcut"] = {"$gte": prefix, "$lt": prefix + "\x7f"}
        return await self.pages.fetch(self.collection, SavedReply.of, query, after, limit)

    async def update(self, reply_id: str, changes: dict[str, Any]) -> SavedReply | None:
        """:class:`DuplicateKey` if the new shortcut is another's."""
        changed = {"$set": {**changes, "updated_at": utcnow()}}
        try:
            document = await update_returning(self.collection, {"_id": reply_id}, changed)
        except DuplicateKeyError:
            raise DuplicateKey(f"shortcut {changes.get('shortcut')!r} is taken") from None
        return maybe(SavedReply.of, document)

    async def delete(self, reply_id: str) -> bool:
        return (await self.collection.delete_one({"_id": reply_id})).deleted_count == 1
