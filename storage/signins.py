"""The ``sign_in_failures`` collection: failed sign-ins per key, in fixed windows.

One small document per key (a hashed username, a client address), so every gateway
on the database enforces one limit and an attacker's choice of username costs a
fixed few bytes. Documents expire (TTL index) when their window ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING

from storage.records import Database, upsert_returning, utcnow


@dataclass(frozen=True)
class Window:
    attempts: int  # failed or still being checked, this one included
    until: datetime  # when the window ends and the count starts again


class SignInFailuresRepository:
    def __init__(self, db: Database) -> None:
        self.collection = db["sign_in_failures"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("until", ASCENDING)], expireAfterSeconds=0, name="until_ttl"
        )

    async def reserve(self, key: str, window: timedelta) -> Window:
        """Count an attempt for ``key`` before it is checked (atomic), so a burst of
        concurrent guesses cannot have more of them checked than the limit."""

        def update() -> list[dict[str, Any]]:
            now = utcnow()
            over = {"$lte": [{"$ifNull": ["$until", now]}, now]}  # no window yet, or it ended
            return [
                {
                    "$set": {
                        "n": {"$cond": [over, 1, {"$add": ["$n", 1]}]},
                        "until": {"$cond": [over, now + window, "$until"]},
                    }
                }
            ]

        document = await upsert_returning(self.collection, {"_id": key}, update)
        return Window(document["n"], document["until"])

    async def give_back(self, key: str) -> None:
        """A reserved attempt succeeded: it is not a failure."""
        await self.collection.update_one({"_id": key, "n": {"$gt": 0}}, {"$inc": {"n": -1}})

    async def forget(self, key: str) -> None:
        await self.collection.delete_one({"_id": key})
