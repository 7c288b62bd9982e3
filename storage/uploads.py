"""Files agents upload to send: in the database, so every gateway can serve them.

GridFS's layout (a file document and 255 KiB chunks) with one difference: each
chunk carries the file's ``created_at`` too. GridFS chunks carry no date, so no TTL
index could expire them; here the same retention that expires messages deletes the
file and its chunks, on MongoDB (TTL) and on the embedded server (the sweeper).

The chunks are written first and the file document last, so a file is there, whole,
once its document is: a write cut short leaves only chunks no file names, which
expire like the rest.

What each agent uploads is counted per hour (``upload_quota``, one small document an
agent and hour, kept as long as the files): the hour's count bounds one agent, the
sum of all of them the bytes stored.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from bson import Binary
from pymongo import ASCENDING

from storage.records import (
    Database,
    ensure_expiry,
    maybe,
    upsert_returning,
    utcnow,
)

CHUNK_BYTES = 255 * 1024  # GridFS's default: a chunk and its document stay far under 16 MB
CHUNKS_PER_WRITE = 16  # 4 MB a round trip


@dataclass(frozen=True, slots=True)
class Upload:
    id: str  # 128 random bits: links to it cannot be guessed from another's
    size: int
    mime_type: str
    file_name: str
    created_at: datetime

    @classmethod
    def of(cls, d: dict) -> Upload:  # type: ignore[type-arg]
        return cls(d["_id"], d["size"], d["mime_type"], d["file_name"], d["created_at"])


class QuotaExceeded(Exception):
    """An upload would pass a limit: ``limit`` is "hour" (the agent's) or "total"."""

    def __init__(self, limit: str) -> None:
        super().__init__(limit)
        self.limit = limit


class UploadsRepository:
    def __init__(self, db: Database) -> None:
        self.files = db["uploads"]
        self.chunks = db["upload_chunks"]
        self.quota = db["upload_quota"]
        self.retention_seconds = 30 * 86400  # the messages': set by ensure_indexes

    async def ensure_indexes(self, retention_seconds: int, *, server_expires: bool) -> None:
        self.retention_seconds = retention_seconds
        await self.chunks.create_index([("file_id", ASCENDING), ("n", ASCENDING)], unique=True)
        for collection in (self.files, self.chunks):
            await ensure_expiry(collection, retention_seconds, server_expires=server_expires)
        # A few documents per agent and day: a TTL index costs nothing here.
        await self.quota.create_index([("until", ASCENDING)], expireAfterSeconds=0)

    async def reserve(self, agent_id: str, size: int, per_hour: int, total: int) -> str:
        """Count ``size`` bytes against the agent's hour and the store, and return the
        count's key for :meth:`put`; :class:`QuotaExceeded` (nothing counted) naming
        the limit ("hour" or "total") that would be passed."""
        now = utcnow()
        hour = now.replace(minute=0, second=0, microsecond=0)
        key = f"{agent_id}:{hour.isoformat()}"
        until = hour + timedelta(seconds=self.retention_seconds, hours=1)
        counted = await upsert_returning(
            self.quota,
            {"_id": key},
            lambda: {"$inc": {"bytes": size}, "$set": {"until": until}},
        )
        over = None
        if counted["bytes"] > per_hour:
            over = "hour"
        else:
            summed = self.quota.aggregate([{"$group": {"_id": None, "bytes": {"$sum": "$bytes"}}}])
            stored = await (await summed).to_list()
            if stored and stored[0]["bytes"] > total:
                over = "total"
        if over is not None:
            await self.quota.update_one({"_id": key}, {"$inc": {"bytes": -size}})
            raise QuotaExceeded(over)
        return key

    async def put(self, data: bytes, mime_type: str, file_name: str, quota: str = "") -> Upload:
        now = utcnow()
        file_id = secrets.token_urlsafe(16)
        view = memoryview(data)
        starts = range(0, len(data), CHUNK_BYTES)
        # A few chunks per write: a 20 MB file is never copied whole into one batch.
        for first in range(0, len(starts), CHUNKS_PER_WRITE):
            batch = [
                {"file_id": file_id, "n": n, "data": Binary(bytes(view[at : at + CHUNK_BYTES])),
                 "created_at": now}
                for n, at in enumerate(starts[first : first + CHUNKS_PER_WRITE], first)
            ]  # fmt: skip
            await self.chunks.insert_many(batch, ordered=True)
        document = {"_id": file_id, "size": len(data), "mime_type": mime_type,
                    "file_name": file_name, "chunks": len(starts), "created_at": now,
                    "quota": quota}  # fmt: skip
        await self.files.insert_one(document)
        return Upload.of(document)

    async def get(self, file_id: str) -> Upload | None:
        return maybe(Upload.of, await self.files.find_one({"_id": file_id}))

    async def chunks_of(self, upload: Upload) -> AsyncIterator[bytes]:
        """The file's bytes, a chunk at a time; ValueError at the end if part of it is
        gone (it expired meanwhile), so a short file is never taken for the whole."""
        found = self.chunks.find({"file_id": upload.id}).sort("n", ASCENDING)
        size = 0
        async for chunk in found:
            size += len(chunk["data"])
            yield bytes(chunk["data"])
        if size != upload.size:
            raise ValueError(f"upload {upload.id}: {size} of {upload.size} bytes left")

    async def delete(self, file_id: str) -> None:
        """Remove a file no message will send (its send was refused or replayed); its
        bytes no longer count against its agent's quota."""
        found = await self.files.find_one({"_id": file_id}, projection={"quota": 1, "size": 1})
        await self.files.delete_one({"_id": file_id})
        if found and found.get("quota"):
            await self.quota.update_one(
                {"_id": found["quota"]}, {"$inc": {"bytes": -found["size"]}}
            )
        await self.chunks.delete_many({"file_id": file_id})

    async def count(self) -> int:
        return await self.files.count_documents({}) + await self.chunks.count_documents({})
