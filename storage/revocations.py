"""The ``revoked_tokens`` collection: used refresh tokens and revoked token families.

Entries expire (TTL index) once no token they name could still be valid.
"""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError


class RevocationsRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db["revoked_tokens"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_at_ttl"
        )

    async def use_once(self, key: str, expires_at: datetime) -> bool:
        """Mark ``key`` used; ``False`` if it was used before (atomic)."""
        try:
            await self.collection.insert_one({"_id": key, "expires_at": expires_at})
        except DuplicateKeyError:
            return False
        return True

    async def revoke(self, key: str, expires_at: datetime) -> None:
        await self.collection.update_one(
            {"_id": key}, {"$max": {"expires_at": expires_at}}, upsert=True
        )

    async def is_revoked(self, key: str) -> bool:
        return await self.collection.find_one({"_id": key}, projection={"_id": 1}) is not None
