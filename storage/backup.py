"""Every document the gateway keeps, read as of one moment and written back.

A backup reads each collection in ``_id`` order as raw BSON, so what is restored is
byte for byte what was read: no decoding, no dates moved between time zones.

One moment, where the server offers it: a replica set reads from a snapshot
session, the embedded server inside a transaction that reads a snapshot; neither
stops the gateway's writes. A standalone MongoDB has no snapshot, and there the
order of the collections keeps what is read whole: whatever refers to a document
is read before the document (the gateway writes a message's contact,
conversation and files before the message), so each document read finds what it
refers to, and only what was written meanwhile may be missing.

A restore writes into a database that holds nothing, and marks it as being
restored until the last document is in: a gateway refuses to start on a database
whose restore did not finish (storage/schema.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import OperationFailure
from pymongo.read_concern import ReadConcern

from storage.database import Storage
from storage.newest import MARKS
from storage.records import Database
from storage.schema import RESTORING

# Who holds which work now: a restored installation starts with nobody holding any.
SKIPPED = frozenset({"leases"})
# Read first; the rest follow by name, ``agents`` last (everything names agents).
# ``meta`` comes first: a migration that runs meanwhile finds its version behind
# and runs again on the restore, as every step may (storage/schema.py).
FIRST = (
    "meta",
    "subscription_deliveries",  # names events and subscriptions
    "events",  # name conversations, messages and agents
    "messages",  # name conversations, contacts, uploads and agents
    "uploads",  # a file document is written after its chunks
    "upload_chunks",
    "conversations",  # name contacts, channels and agents
    "contacts",  # name channels
)
LAST = ("agents",)
# What a gateway writes at its first start, before it holds data: a restore replaces it.
STARTED = ("meta", MARKS)
BATCH_DOCUMENTS = 1000
BATCH_BYTES = 8 * 1024 * 1024  # far under the 48 MB a message to the server may hold
RAW = CodecOptions(document_class=RawBSONDocument)


class NotEmpty(Exception):
    """The database to restore into holds data: ``collections`` name where."""

    def __init__(self, collections: list[str]) -> None:
        super().__init__(", ".join(collections))
        self.collections = collections


async def collection_names(db: Database) -> list[str]:
    """The collections a backup holds, in the order it reads them."""
    found = {n for n in await db.list_collection_names() if not n.startswith("system.")}
    found -= SKIPPED
    first = [n for n in FIRST if n in found]
    last = [n for n in LAST if n in found]
    return first + sorted(found - set(first) - set(last)) + last


@contextlib.asynccontextmanager
async def one_moment(storage: Storage) -> AsyncIterator[tuple[AsyncClientSession | None, str]]:
    """A session whose reads all see the database as of one moment, and how:
    "snapshot", or "ordered" where the server has none (a standalone MongoDB)."""
    hello = await storage.client.admin.command("hello")
    build = await storage.client.admin.command("buildInfo")
    if "setName" in hello:  # MongoDB: a snapshot session, bounded by its history window
        async with storage.client.start_session(snapshot=True) as session:
            yield session, "snapshot"
    elif "secantusVersion" in build:  # its snapshot sessions need a replica set
        async with storage.client.start_session() as session:
            await session.start_transaction(read_concern=ReadConcern("snapshot"))
            try:
                yield session, "snapshot"
            finally:  # it wrote nothing: nothing to commit
                with contextlib.suppress(OperationFailure):
                    await session.abort_transaction()
    else:
        yield None, "ordered"


async def documents(
    db: Database, name: str, session: AsyncClientSession | None
) -> AsyncIterator[RawBSONDocument]:
    """The documents of ``name`` in ``_id`` order, undecoded."""
    raw = db[name].with_options(codec_options=RAW)
    query = {} if name != "meta" else {"_id": {"$ne": RESTORING["_id"]}}
    async for document in raw.find(query, sort=[("_id", 1)], session=session):
        yield document


async def holding_data(db: Database) -> list[str]:
    """The collections of ``db`` a restore would write into that hold documents,
    other than what a gateway that started and stopped writes."""
    held = []
    for name in await collection_names(db):
        if name not in STARTED and await db[name].find_one({}, projection={"_id": 1}):
            held.append(name)
    return held


async def begin_restore(db: Database, *, replace: bool) -> None:
    """Make ``db`` ready to receive a backup: empty (with ``replace``, emptied), and
    marked as being restored. :class:`NotEmpty` if it holds data and not ``replace``."""
    held = await holding_data(db)
    if held and not replace:
        raise NotEmpty(held)
    if replace:
        for name in await db.list_collection_names():
            if not name.startswith("system."):
                await db.drop_collection(name)
    else:  # what a gateway that started once left: the restore brings its own
        for name in STARTED:
            await db.drop_collection(name)
    await db["meta"].insert_one({**RESTORING})


async def write(db: Database, name: str, batch: Iterable[bytes]) -> int:
    """Insert ``batch`` (BSON documents) into ``name``; returns how many."""
    raw = db[name].with_options(codec_options=RAW)
    documents: list[Any] = [RawBSONDocument(data) for data in batch]
    if documents:
        await raw.insert_many(documents, ordered=True)
    return len(documents)


async def finish_restore(db: Database) -> None:
    await db["meta"].delete_one(RESTORING)
