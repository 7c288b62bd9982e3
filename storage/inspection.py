"""What the database is, as ``bot-gateway doctor`` reports it: its server and
version, whether it is a replica set, its clock, and which of the indexes this code
makes are missing (read from a scratch database the code indexes, then drops)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from storage.database import Storage
from storage.records import utcnow
from storage.schema import VERSION, stored_version


@dataclass(frozen=True)
class DatabaseFacts:
    server: str  # "MongoDB 7.0.4" or "secantusdb 0.7.0b3"
    replica_set: str | None  # its name; None on a standalone server
    clock_offset_seconds: float  # the server's clock minus ours
    schema: int  # the data's schema version (storage/schema.py)
    code_schema: int = VERSION
    fresh: bool = False  # no collection yet: no gateway has started on it
    # collection → the names of indexes this code makes that it lacks
    missing: dict[str, list[str]] = field(default_factory=dict)
    # collection → (expireAfterSeconds wanted, found) where a TTL index differs
    ttl: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)


async def inspect(storage: Storage, message_seconds: int, event_seconds: int) -> DatabaseFacts:
    """The facts; raises what pymongo raises when the server cannot be reached."""
    admin = storage.client.admin
    build = await admin.command("buildInfo")
    hello = await admin.command("hello")
    secantus = build.get("secantusVersion")
    server = f"secantusdb {secantus}" if secantus else f"MongoDB {build.get('version', '?')}"
    local: datetime | None = hello.get("localTime")
    if local is not None and local.tzinfo is None:  # commands decode dates naive, in UTC
        local = local.replace(tzinfo=UTC)
    offset = (local - utcnow()).total_seconds() if local is not None else 0.0
    fresh = not await storage.db.list_collection_names()
    wanted = {} if fresh else await _indexes_made_here(storage, message_seconds, event_seconds)
    missing: dict[str, list[str]] = {}
    ttl: dict[str, tuple[int | None, int | None]] = {}
    for name, indexes in wanted.items():
        found = await storage.db[name].index_information()
        # _id's comes with a collection's first write: one no write made yet lacks it.
        absent = sorted(set(indexes) - set(found) - {"_id_"})
        if absent:
            missing[name] = absent
        for index, spec in indexes.items():
            if index in found and "expireAfterSeconds" in spec:
                want, have = spec["expireAfterSeconds"], found[index].get("expireAfterSeconds")
                if want != have:
                    ttl[name] = (want, have)
    return DatabaseFacts(
        server=server,
        replica_set=hello.get("setName"),
        clock_offset_seconds=offset,
        schema=await stored_version(storage.db),
        missing=missing,
        ttl=ttl,
        fresh=fresh,
    )


async def _indexes_made_here(
    storage: Storage, message_seconds: int, event_seconds: int
) -> dict[str, dict[str, Any]]:
    """Every collection's indexes as this code makes them, on a scratch database."""
    scratch = Storage.connect(
        storage.uri, f"doctor_{uuid.uuid4().hex[:12]}", sole_writer=storage.outbox.sole_writer
    )
    try:
        await scratch.ensure_indexes(message_seconds, event_seconds)
        names = await scratch.db.list_collection_names()
        return {name: dict(await scratch.db[name].index_information()) for name in sorted(names)}
    finally:
        await scratch.client.drop_database(scratch.db.name)
        await scratch.close()
