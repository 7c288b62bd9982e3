"""The ``leases`` collection: which gateway works a channel (polls it, sends its outbox).

A lease is one document per channel: its holder and until when it holds. The
holder renews it well before then; anyone may take it once it has run out, so a
gateway that dies (``kill -9`` included) is replaced within one lease.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.errors import DuplicateKeyError

from storage.records import Database, utcnow

RELEASED = datetime(1970, 1, 1, tzinfo=UTC)  # the end of a lease given up


class LeasesRepository:
    def __init__(self, db: Database) -> None:
        self.collection = db["leases"]

    async def hold(self, name: str, owner: str, until: datetime, *, force: bool = False) -> bool:
        """Take or renew the lease ``name`` until ``until``; False if another holds it.

        ``force`` takes it whoever holds it: for a gateway that knows it is alone.
        """
        mine = {"_id": name}
        if not force:
            mine["$or"] = [{"holder": owner}, {"until": {"$lt": utcnow()}}]  # type: ignore[assignment]
        try:
            # No match and no document: the upsert creates it. No match because
            # another holds it: the upsert's insert hits the unique _id.
            await self.collection.update_one(
                mine, {"$set": {"holder": owner, "until": until}}, upsert=True
            )
        except DuplicateKeyError:
            return False
        return True

    async def release(self, names: list[str], owner: str) -> None:
        """Give up leases this owner holds, so another gateway takes them at once."""
        # Long past, not now: a hold in the same millisecond would not see "now" as past.
        await self.collection.update_many(
            {"_id": {"$in": names}, "holder": owner}, {"$set": {"until": RELEASED}}
        )

    async def drop(self, name: str, owner: str) -> None:
        """Give up a lease for good (one held for a task that is over): it leaves no
        document behind, and another process takes it at once if ever needed again."""
        await self.collection.delete_one({"_id": name, "holder": owner})

    async def holders(self) -> dict[str, str]:
        """Who holds each lease (for tests and operators)."""
        return {d["_id"]: d["holder"] async for d in self.collection.find()}
