"""The ``faqs`` collection: questions the gateway answers by itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING

from storage.models import Faq, Unanswered
from storage.pages import KEY, Page, PageReader, Position
from storage.records import Database, key_floor, maybe, millis, new_id, update_returning, utcnow

# Messages one suggestions call reads at most, newest first.
SUGGESTIONS_SCANNED = 20_000


class FaqsRepository:
    def __init__(self, db: Database, pages: PageReader) -> None:
        self.collection = db["faqs"]
        self.messages = db["messages"]
        self.pages = pages

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([(KEY, ASCENDING)], name=KEY)
        # Every normalised phrasing of every FAQ: a lookup is one indexed query.
        await self.collection.create_index([("phrases", ASCENDING)], name="phrases")

    async def create(self, fields: dict[str, Any]) -> Faq:
        now = utcnow()
        key = new_id(now)
        document = {
            "_id": key,
            KEY: key,
            **fields,
            "hits": 0,
            "created_at": now,
            "updated_at": now,
        }
        await self.collection.insert_one(document)
        return Faq.of(document)

    async def get(self, faq_id: str) -> Faq | None:
        return maybe(Faq.of, await self.collection.find_one({"_id": faq_id}))

    async def list_page(self, after: Position | None, limit: int) -> Page[Faq]:
        return await self.pages.fetch(self.collection, Faq.of, {}, after, limit)

    async def update(self, faq_id: str, changes: dict[str, Any]) -> Faq | None:
        changed = {"$set": {**changes, "updated_at": utcnow()}}
        return maybe(Faq.of, await update_returning(self.collection, {"_id": faq_id}, changed))

    async def delete(self, faq_id: str) -> bool:
        return (await self.collection.delete_one({"_id": faq_id})).deleted_count == 1

    async def find_by_phrase(self, phrase: str) -> Faq | None:
        """The enabled FAQ one of whose phrasings is ``phrase`` (already normalised)."""
        return maybe(Faq.of, await self.collection.find_one({"phrases": phrase, "enabled": True}))

    async def enabled_phrases(self) -> set[str]:
        """Every normalised phrasing of every enabled FAQ."""
        found: set[str] = set()
        async for faq in self.collection.find({"enabled": True}, projection={"phrases": 1}):
            found.update(faq["phrases"])
        return found

    async def phrase_taken(self, phrases: list[str], except_id: str | None = None) -> str | None:
        """The first of ``phrases`` another FAQ already answers, if any."""
        query: dict[str, Any] = {"phrases": {"$in": phrases}}
        if except_id is not None:
            query["_id"] = {"$ne": except_id}
        other = await self.collection.find_one(query, projection={"phrases": 1})
        if other is None:
            return None
        return next(p for p in phrases if p in other["phrases"])

    async def count_hit(self, faq_id: str) -> None:
        await self.collection.update_one({"_id": faq_id}, {"$inc": {"hits": 1}})

    async def unanswered(self, since: datetime, limit: int) -> list[Unanswered]:
        """The most asked normalised inbound texts since ``since`` that no FAQ answered,
        among the newest ``SUGGESTIONS_SCANNED`` messages: a range of the list-key
        index (ids are creation-ordered), so a call reads a bounded amount whatever
        ``since`` is."""
        pipeline: list[dict[str, Any]] = [
            {"$match": {KEY: {"$gte": key_floor(millis(since))}}},
            {"$sort": {KEY: -1}},
            {"$limit": SUGGESTIONS_SCANNED},
            {
                "$match": {
                    "direction": "in",
                    "faq_id": None,
                    "normalized": {"$nin": ["", None]},
                }
            },
            {
                "$group": {
                    "_id": "$normalized",
                    "count": {"$sum": 1},
                    "contacts": {"$addToSet": "$contact_id"},
                    "example": {"$last": "$content"},
                }
            },
            {"$project": {"count": 1, "example": 1, "contacts": {"$size": "$contacts"}}},
            {"$sort": {"contacts": -1, "count": -1, "_id": 1}},
            {"$limit": limit},
        ]
        rows = await (await self.messages.aggregate(pipeline)).to_list()
        return [Unanswered(r["_id"], r["example"], r["count"], r["contacts"]) for r in rows]
