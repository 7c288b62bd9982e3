"""The ``subscriptions`` collection (other systems' outbound webhooks, each with how
far its delivery has come) and ``subscription_deliveries``, the log of every try,
kept as long as the events are."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING

from storage.lists import Page, Position
from storage.models import Delivery, EventType, Subscription
from storage.pages import KEY, PageReader
from storage.records import (
    Database,
    ensure_expiry,
    maybe,
    new_id,
    update_returning,
    utcnow,
)


class SubscriptionsRepository:
    def __init__(self, db: Database, pages: PageReader) -> None:
        self.collection = db["subscriptions"]
        self.deliveries = db["subscription_deliveries"]
        self.pages = pages
        self.retention_seconds = 48 * 3600

    async def ensure_indexes(self, retention_seconds: int, *, server_expires: bool) -> None:
        self.retention_seconds = retention_seconds
        await self.collection.create_index([(KEY, ASCENDING)], name=KEY)
        await self.deliveries.create_index(
            [("subscription_id", ASCENDING), (KEY, ASCENDING)], name="subscription"
        )
        await self.deliveries.create_index([(KEY, ASCENDING)], name=KEY)
        await ensure_expiry(
            self.deliveries, retention_seconds, server_expires=server_expires, by_key=True
        )

    async def create(
        self,
        url: str,
        events: frozenset[EventType],
        description: str,
        secret: str,
        *,
        cursor: str,
        created_by: str,
        bot_id: str | None = None,
    ) -> Subscription:
        """A new subscription, delivering the events after ``cursor``."""
        now = utcnow()
        key = new_id(now)
        document = {
            "_id": key,
            KEY: key,
            "url": url,
            "events": sorted(e.value for e in events),
            "description": description,
            "secret": secret,
            "cursor": cursor,
            "created_by": created_by,
            "created_at": now,
            "updated_at": now,
            "paused": False,
            "disabled_reason": None,
            "failing_since": None,
            "last_error": None,
            "bot_id": bot_id,
        }
        await self.collection.insert_one(document)
        return Subscription.of(document)

    async def get(self, subscription_id: str) -> Subscription | None:
        return maybe(Subscription.of, await self.collection.find_one({"_id": subscription_id}))

    async def list_page(self, after: Position | None, limit: int) -> Page[Subscription]:
        return await self.pages.fetch(self.collection, Subscription.of, {}, after, limit)

    async def active_ids(self) -> list[str]:
        """The subscriptions to deliver: neither paused nor disabled."""
        found = self.collection.find({"paused": False, "disabled_reason": None}, {"_id": 1})
        return [d["_id"] async for d in found]

    async def failing_bots(self, since: datetime) -> dict[str, str]:
        """The bots fed by a subscription failing since before ``since`` (and not
        paused): bot token id → the last error."""
        found = self.collection.find(
            {"bot_id": {"$type": "string"}, "paused": False, "failing_since": {"$lt": since}},
            {"bot_id": 1, "last_error": 1},
        )
        return {d["bot_id"]: d.get("last_error") or "failing" async for d in found}

    async def update(self, subscription_id: str, changes: dict[str, Any]) -> Subscription | None:
        if "events" in changes:
            changes = {**changes, "events": sorted(e.value for e in changes["events"])}
        changed = {"$set": {**changes, "updated_at": utcnow()}}
        found = await update_returning(self.collection, {"_id": subscription_id}, changed)
        return maybe(Subscription.of, found)

    async def delete(self, subscription_id: str) -> bool:
        deleted = await self.collection.delete_one({"_id": subscription_id})
        await self.deliveries.delete_many({"subscription_id": subscription_id})
        return deleted.deleted_count == 1

    async def advance(self, subscription_id: str, cursor: str, to: str) -> bool:
        """Delivery is done up to ``to``, from ``cursor``: False if the cursor moved
        meanwhile (a replay), so the sender reads the subscription again."""
        done = await self.collection.update_one(
            {"_id": subscription_id, "cursor": cursor},
            {"$set": {"cursor": to, "failing_since": None, "last_error": None}},
        )
        return done.matched_count == 1

    async def failing(self, subscription_id: str, since: datetime, error: str) -> None:
        await self.collection.update_one(
            {"_id": subscription_id},
            {"$set": {"failing_since": since, "last_error": error}},
        )

    async def logged(self, delivery: dict[str, Any]) -> None:
        """Keep one try in the delivery log."""
        now = utcnow()
        key = new_id(now)
        await self.deliveries.insert_one({"_id": key, KEY: key, "created_at": now, **delivery})

    async def deliveries_page(
        self, subscription_id: str, after: Position | None, limit: int
    ) -> Page[Delivery]:
        query = {"subscription_id": subscription_id}
        return await self.pages.fetch(self.deliveries, Delivery.of, query, after, limit)
