"""The ``faqs`` collection: questions the gateway answers by itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING

from storage.lists import Page, Position
from storage.models import Faq, Unanswered
from storage.pages import KEY, PageReader
from storage.records import Database, key_floor, maybe, millis, new_id, update_returning, utcnow

# Messages one suggestions call reads at most, newest first.
SUGGESTIONS_SCANNED = 5_000
_ASKED = {KEY: 1, "normalized": 1, "faq_id": 1, "contact_id": 1, "content": 1}


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
        among the newest ``SUGGESTIONS_SCANNED`` messages at most, so a call reads a
        bounded amount whatever ``since`` is.

        Read newest first in windows of the list-key index (ids are creation-ordered):
        the embedded server reads a whole index range before any limit, so a window
        is sized from how many the one before held, never the whole ``since``.
        """
        asked: dict[str, tuple[int, set[str], str]] = {}
        for message in await self._newest_inbound(since):
            phrase = message.get("normalized")
            if not phrase or message.get("faq_id") is not None:
                continue
            count, contacts, example = asked.get(phrase, (0, set(), message["content"]))
            contacts.add(message["contact_id"])
            asked[phrase] = (count + 1, contacts, example)
        ranked = sorted(asked.items(), key=lambda kv: (-len(kv[1][1]), -kv[1][0], kv[0]))
        return [Unanswered(q, ex, n, len(who)) for q, (n, who, ex) in ranked[:limit]]

    async def _newest_inbound(self, since: datetime) -> list[dict[str, Any]]:
        floor, upper = millis(since), millis(utcnow()) + 1
        span = 60_000  # ms: a minute first, then sized from what a window held
        found: list[dict[str, Any]] = []
        while upper > floor and len(found) < SUGGESTIONS_SCANNED:
            lower = max(floor, upper - span)
            window = {KEY: {"$gte": key_floor(lower), "$lt": key_floor(upper)}, "direction": "in"}
            batch = await self.messages.find(window, projection=_ASKED).to_list()
            found += batch
            upper = lower
            wanted = SUGGESTIONS_SCANNED - len(found)
            # As many as are still wanted, at the density seen: at most double the span.
            span = int(min(span * 2, span * wanted / len(batch))) if batch else span * 4
            span = max(span, 1000)
        found.sort(key=lambda d: d[KEY], reverse=True)
        return found[:SUGGESTIONS_SCANNED]
