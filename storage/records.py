"""Helpers shared by the repositories: ids, timestamps and the document shape.

Ids are UUIDv7 strings (RFC 9562): their first 48 bits are the creation time in
milliseconds, so sorting by ``_id`` sorts by creation time and a time range is a
range of ids. Lists page by ``list_key``, a UUIDv7 too (for messages, the id itself;
storage/pages.py says why), and never need a second sort key.

Repositories hand the rest of the gateway the models of storage/models.py; only
storage code knows the documents, and that MongoDB calls the id ``_id``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pymongo import ReturnDocument, UpdateOne, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

# Namespace for ids derived from provider identifiers (contacts: channel + external id).
KEY = "list_key"  # every listed collection's time-ordered key (storage/pages.py)
ID_NAMESPACE = uuid.UUID("6f1c2a53-8d0e-4c1b-9a57-2b9e5f0c7d41")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

# The driver's generic types with our documents: plain dicts.
Document = dict[str, Any]
T = TypeVar("T")
Database = AsyncDatabase[Document]
Collection = AsyncCollection[Document]


def quick(collection: Collection) -> Collection:
    """``collection`` for writes the server acknowledges before its journal has them:
    what is derived from messages (events, previews), never the messages themselves. A
    crashed server may lose its last ~100 ms of them; a journaled write costs ~15 ms
    on the embedded server, and the send path has three."""
    return collection.with_options(write_concern=WriteConcern(w=1, j=False))


def maybe(of: Callable[[Document], T], document: Document | None) -> T | None:
    """``of(document)``, or None where nothing was found."""
    return of(document) if document is not None else None


def utcnow() -> datetime:
    # MongoDB stores milliseconds; truncate so what we return equals what we read back.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def millis(at: datetime, *, ceil: bool = False) -> int:
    """Milliseconds since the epoch, rounded down (or up)."""
    return -((_EPOCH - at) // _MS) if ceil else (at - _EPOCH) // _MS


# (millisecond, rand_a) of the newest id made here: ids of one millisecond count up,
# so messages written in one batch keep their order (RFC 9562, 6.2 method 1).
_last = (0, 0)


def new_id(at: datetime | None = None) -> str:
    """A UUIDv7 for a document created ``at`` (default: now)."""
    global _last
    ms = millis(at or utcnow())
    rand_a = int.from_bytes(os.urandom(2), "big") & 0x7FF  # room left to count up
    if ms == _last[0] and _last[1] < 0xFFF:
        rand_a = _last[1] + 1
    if ms >= _last[0]:
        _last = (ms, rand_a)
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0x2 << 62) | rand_b  # v7, RFC variant
    return str(uuid.UUID(int=value))


def key_floor(ms: int) -> str:
    """The smallest id string of any document created at millisecond ``ms`` or later."""
    return str(uuid.UUID(int=max(0, ms) << 80))


def key_millis(key: str) -> int:
    """The creation millisecond encoded in a UUIDv7 id."""
    return int(key.replace("-", "")[:12], 16)


def derived_id(*parts: str) -> str:
    """A stable id for a tuple of provider identifiers, so writes need no read first."""
    return str(uuid.uuid5(ID_NAMESPACE, "\x1f".join(parts)))


# Two upserts of one key can both miss and race to insert. MongoDB answers the loser
# with a duplicate key error where it cannot retry itself
# (https://jira.mongodb.org/browse/SERVER-14322), and secantusdb answered it with no
# document while another client built the indexes. Either way the document exists
# now, so the next try matches it.
UPSERT_TRIES = 5


def duplicates(exc: BulkWriteError) -> set[int]:
    """The places of the writes a bulk write refused for a duplicate key; raises
    ``exc`` again if any failed for another reason."""
    errors = exc.details.get("writeErrors", [])
    if not errors or any(e["code"] != 11000 for e in errors):
        raise exc
    return {e["index"] for e in errors}


async def upsert_all(collection: Collection, writes: list[UpdateOne]) -> None:
    """Upserts in one unordered bulk write. One that lost the insert race on the
    unique ``_id`` to another writer runs again: it is an update now.
    https://www.mongodb.com/docs/manual/reference/method/db.collection.updateOne/#upsert-with-duplicate-values
    """
    try:
        await collection.bulk_write(writes, ordered=False)
    except BulkWriteError as exc:
        await collection.bulk_write([writes[n] for n in sorted(duplicates(exc))], ordered=False)


async def update_returning(
    collection: Collection,
    query: Mapping[str, Any],
    update: Mapping[str, Any] | Sequence[Mapping[str, Any]],
) -> Document | None:
    """The document after ``update`` (operators, or a pipeline's stages), if ``query``
    (which names its ``_id``) matched.

    An update and a read by ``_id``, not ``find_one_and_update``: the embedded server
    answers that by walking the whole collection (400 ms at 50,000 messages, where
    these two take 2 ms). A change landing between the two shows in what is read.
    """
    if (await collection.update_one(query, update)).matched_count == 0:
        return None
    return await collection.find_one({"_id": query["_id"]})


async def upsert_returning(
    collection: Collection, query: Mapping[str, Any], update: Callable[[], Any]
) -> Document:
    """``find_one_and_update(upsert=True)`` returning the document after the update,
    tried again when a concurrent upsert of the same key won the insert.
    ``update()`` builds the update afresh for each try (its timestamps, its new id)."""
    for _ in range(UPSERT_TRIES):
        try:
            document = await collection.find_one_and_update(
                query, update(), upsert=True, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError:
            continue
        if document is not None:
            return document
    raise RuntimeError(f"{collection.name}: {UPSERT_TRIES} upserts returned no document")


TTL_INDEX = "created_at_ttl"  # MongoDB deletes expired documents through it
EXPIRY_INDEX = "created_at"  # the embedded server: the gateway deletes them (storage/expiry.py)


async def ensure_expiry(
    collection: Collection, retention_seconds: int, *, server_expires: bool, by_key: bool = False
) -> bool:
    """Have ``collection``'s documents expire ``retention_seconds`` after ``created_at``.

    With ``server_expires`` a TTL index has the server delete them; a changed retention
    is edited in place (collMod), with no rebuild. The embedded server answers a TTL
    index by decoding every document once a minute under its global lock, so there
    storage/expiry.py deletes them instead: through ``list_key`` where that is
    the creation time (``by_key``: a UUIDv7 made when the document was), else through
    a plain index on ``created_at``. Each index is work at every write on that server
    (it walks each one per document): the key's serves the lists already. Returns
    whether the retention changed.
    """
    indexes = await collection.index_information()
    existing = indexes.get(TTL_INDEX)
    if not server_expires:
        if existing is not None:  # made before the gateway swept the embedded server
            await collection.drop_index(TTL_INDEX)
        if not by_key:
            await collection.create_index([("created_at", 1)], name=EXPIRY_INDEX)
        elif EXPIRY_INDEX in indexes:  # an earlier version's
            await collection.drop_index(EXPIRY_INDEX)
        return False
    if existing is None:
        await collection.create_index(
            [("created_at", 1)], expireAfterSeconds=retention_seconds, name=TTL_INDEX
        )
        return False
    if existing.get("expireAfterSeconds") == retention_seconds:
        return False
    index = {"name": TTL_INDEX, "expireAfterSeconds": retention_seconds}
    await collection.database.command({"collMod": collection.name, "index": index})
    return True
