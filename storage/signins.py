"""The ``sign_in_failures`` collection: failed sign-ins per key, in fixed windows,
the next free slot of a key that is slowed down, and the addresses an account
signed in from.

One small document per key (a hashed username, a client address, a pair), so every
gateway on the database enforces one limit and an attacker's choice of username
costs a fixed few bytes. Documents expire (TTL index on ``until``) when they end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

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

    async def take_slot(self, key: str, every: timedelta, max_wait: timedelta) -> datetime | None:
        """The time of ``key``'s next free slot, taken: slots are ``every`` apart, so
        attempts under ``key`` run one per ``every`` however many arrive at once, on
        any gateway. None when the next slot is more than ``max_wait`` away."""
        slot_id = "slot:" + key
        for _ in range(8):  # lost races with other attempts for the same slot
            now = utcnow()
            found = await self.collection.find_one({"_id": slot_id})
            taken = found["until"] if found else None
            start = max(taken, now) if taken else now
            if start - now > max_wait:
                return None
            document = {"_id": slot_id, "until": start + every}
            try:
                if found is None:
                    await self.collection.insert_one(document)
                    return start
                result = await self.collection.replace_one(
                    {"_id": slot_id, "until": taken}, document
                )
                if result.modified_count == 1:
                    return start
            except DuplicateKeyError:
                continue
        return None

    async def remember(self, key: str, until: datetime) -> None:
        """Mark ``key`` (an account and an address it signed in from) until ``until``."""
        await self.collection.update_one({"_id": key}, {"$set": {"until": until}}, upsert=True)

    async def remembered(self, key: str) -> bool:
        return await self.collection.find_one({"_id": key, "until": {"$gt": utcnow()}}) is not None
