"""The ``messages`` collection: inbound and outbound messages, the outbox and expiry."""

from __future__ import annotations

import logging
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.records import new_id, to_record, utcnow

log = logging.getLogger("gateway.storage")

TTL_INDEX = "created_at_ttl"


class MessagesRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.collection = db["messages"]

    async def ensure_indexes(self, retention_seconds: int) -> None:
        """Create every index the queries need, and the TTL index that expires messages."""
        c = self.collection
        # Newest-first pages of one conversation or one agent's messages, with _id as
        # the tie-breaker that makes cursors stable.
        await c.create_index(
            [("contact_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
            name="contact_created",
        )
        await c.create_index(
            [("agent_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
            name="agent_created",
        )
        # A provider's retry of an inbound message hits this and is acknowledged, not
        # stored twice. Outbound messages have no dedupe_key and are not indexed here.
        await c.create_index(
            [("channel_id", ASCENDING), ("dedupe_key", ASCENDING)],
            unique=True,
            partialFilterExpression={"dedupe_key": {"$type": "string"}},
            name="inbound_dedupe",
        )
        await c.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)], name="outbox")
        await self._ensure_ttl(retention_seconds)

    async def _ensure_ttl(self, retention_seconds: int) -> None:
        existing = (await self.collection.index_information()).get(TTL_INDEX)
        if existing is None:
            await self.collection.create_index(
                [("created_at", ASCENDING)], expireAfterSeconds=retention_seconds, name=TTL_INDEX
            )
        elif existing.get("expireAfterSeconds") != retention_seconds:
            # Changing the retention must not need a rebuild: collMod edits it in place.
            await self.db.command(
                {
                    "collMod": self.collection.name,
                    "index": {"name": TTL_INDEX, "expireAfterSeconds": retention_seconds},
                }
            )
            log.info(
                "message retention changed from %s s to %s s",
                existing.get("expireAfterSeconds"),
                retention_seconds,
            )

    async def insert_inbound(
        self,
        *,
        channel_id: str,
        contact_id: str,
        dedupe_key: str,
        content: str,
        external_id: str = "",
        extra: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Store an inbound message once; returns ``(record, created)``.

        A second delivery of the same ``dedupe_key`` returns the stored message with
        ``created=False``.
        """
        now = utcnow()
        document = {
            "_id": new_id(),
            "channel_id": channel_id,
            "contact_id": contact_id,
            "agent_id": None,
            "direction": "in",
            "content": content,
            "status": "received",
            "dedupe_key": dedupe_key,
            "external_id": external_id,
            "created_at": now,
            "updated_at": now,
            **(extra or {}),
        }
        try:
            await self.collection.insert_one(document)
        except DuplicateKeyError:
            stored = await self.collection.find_one(
                {"channel_id": channel_id, "dedupe_key": dedupe_key}
            )
            if stored is None:  # expired between the two calls; nothing left to dedupe
                raise
            return to_record(stored), False  # type: ignore[return-value]
        return to_record(document), True  # type: ignore[return-value]

    async def insert_outbound(
        self,
        *,
        channel_id: str,
        contact_id: str,
        content: str,
        agent_id: str | None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Store an outbound message as ``queued``: it is stored before it is sent."""
        now = utcnow()
        document = {
            "_id": new_id(),
            "channel_id": channel_id,
            "contact_id": contact_id,
            "agent_id": agent_id,
            "direction": "out",
            "content": content,
            "status": "queued",
            "external_id": "",
            "error": None,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
            **(extra or {}),
        }
        await self.collection.insert_one(document)
        return to_record(document)  # type: ignore[return-value]

    async def get(self, message_id: str) -> dict[str, Any] | None:
        return to_record(await self.collection.find_one({"_id": message_id}))
