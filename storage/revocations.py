"""The ``revoked_tokens`` collection: refresh tokens that were used up.

Entries expire (TTL index) once the token they name could no longer be valid. An
ended sign-in is kept on its agent (``signed_out``, until its last token expires),
which every request reads anyway.
"""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from storage.records import Database


class RevocationsRepository:
    def __init__(self, db: Database) -> None:
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
