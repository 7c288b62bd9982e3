"""The ``channels`` collection: one document per configured bot or sender."""

from __future__ import annotations

import secrets
from typing import Any

from pymongo import ASCENDING

from storage.lists import Page, Position
from storage.models import StoredChannel
from storage.pages import KEY, PageReader
from storage.records import Database, maybe, new_id, update_returning, upsert_returning, utcnow


class ChannelsRepository:
    def __init__(self, db: Database, pages: PageReader) -> None:
        self.collection = db["channels"]
        self.pages = pages

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("name", ASCENDING)], unique=True, name="name_unique")
        await self.collection.create_index([(KEY, ASCENDING)], name=KEY)

    async def upsert(
        self, name: str, type_: str, mode: str, settings: dict[str, Any]
    ) -> StoredChannel:
        """Create or update the channel declared under ``name``; its id never changes.

        A new channel also gets a random webhook secret, kept for its lifetime.
        """

        def update() -> dict[str, Any]:
            now = utcnow()
            key = new_id(now)
            return {
                "$set": {"type": type_, "mode": mode, "settings": settings, "updated_at": now},
                "$setOnInsert": {
                    "_id": key,
                    KEY: key,
                    "created_at": now,
                    "webhook_secret": secrets.token_urlsafe(32),
                },
            }

        # Gateways starting at once upsert the same channels: the loser of the insert
        # gets the winner's document.
        return StoredChannel.of(await upsert_returning(self.collection, {"name": name}, update))

    async def get(self, channel_id: str) -> StoredChannel | None:
        document = await self.collection.find_one({"_id": channel_id})
        return maybe(StoredChannel.of, document)

    async def list_page(self, after: Position | None, limit: int) -> Page[StoredChannel]:
        return await self.pages.fetch(self.collection, StoredChannel.of, {}, after, limit)

    async def set_bot(self, channel_id: str, bot_id: str | None) -> StoredChannel | None:
        """Name the API token that answers the channel's contacts first (None: no bot)."""
        changed = {"$set": {"bot_id": bot_id, "updated_at": utcnow()}}
        return maybe(
            StoredChannel.of, await update_returning(self.collection, {"_id": channel_id}, changed)
        )

    async def bots(self) -> dict[str, str]:
        """Each channel that has a bot: its id → the bot's token id."""
        found = self.collection.find({"bot_id": {"$type": "string"}}, {"bot_id": 1})
        return {d["_id"]: d["bot_id"] async for d in found}
