"""The stored data's version, and the steps that bring a database up to it.

The version is one document in ``meta``. At start, once the indexes stand, every
step past the stored version runs in order, and the version moves on after each
one: a crash in between runs that step again at the next start, so each step is
idempotent. One process runs them at a time (the ``schema`` lease); another that
starts meanwhile waits for the version. A database of a newer version than this
code knows is refused: an older gateway would misread what a newer one writes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from storage.agents import AgentsRepository
from storage.contacts import ContactsRepository
from storage.conversations import ConversationsRepository
from storage.errors import StorageUnavailable
from storage.leases import LeasesRepository
from storage.outbox import OutboxRepository
from storage.records import Database, utcnow

log = logging.getLogger("gateway.storage")

_VERSION = {"_id": "schema"}
RESTORING = {"_id": "restoring"}  # in ``meta`` while a restore is under way (storage/backup.py)
LEASE = "schema"
LEASE_SECONDS = 300.0  # longer than any step: another process takes over after it
WAIT_SECONDS = 600.0  # how long a process waits for another's steps before giving up
POLL_SECONDS = 0.5


async def _give_roles(db: Database) -> None:
    await AgentsRepository.give_roles(db["agents"])


async def _date_ended_sign_ins(db: Database) -> None:
    await AgentsRepository.date_ended_sign_ins(db["agents"])


async def _reword_contacts(db: Database) -> None:
    await ContactsRepository.reword_everyone(db)


async def _drop_old_outbox_indexes(db: Database) -> None:
    await OutboxRepository.drop_old_indexes(db)


async def _count_inbound(db: Database) -> None:
    await ConversationsRepository.count_inbound(db["conversations"])


# (version, what it does, the step): in order, each idempotent.
Step = tuple[int, str, Callable[[Database], Awaitable[None]]]
STEPS: list[Step] = [
    (1, "agents from before roles: the first made is the admin, the others agents", _give_roles),
    (
        2,
        "ended sign-ins kept as a bare list: each refused until it cannot be used",
        _date_ended_sign_ins,
    ),
    (
        3,
        "one unread count for everyone becomes each reader's: what nobody has read yet",
        _count_inbound,
    ),
    (
        4,
        "contacts' words without accents, so that joao finds João (and older contacts "
        "without words get them)",
        _reword_contacts,
    ),
    (
        5,
        "the outbox indexes of earlier versions, which nothing reads, dropped once "
        "(every start looked for them before)",
        _drop_old_outbox_indexes,
    ),
]
VERSION = STEPS[-1][0]


class NewerSchema(StorageUnavailable):
    """The database was written by a newer gateway than this one."""


async def stored_version(db: Database) -> int:
    found = await db["meta"].find_one(_VERSION)
    return int(found["version"]) if found else 0


async def migrate(db: Database, leases: LeasesRepository, steps: Sequence[Step] = STEPS) -> int:
    """Bring ``db`` to the newest version ``steps`` know; returns the version it is at.
    :class:`NewerSchema` if it is newer than that."""
    newest = steps[-1][0] if steps else 0
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    if await db["meta"].find_one(RESTORING) is not None:
        raise StorageUnavailable(
            "a restore into this database did not finish: run bot-gateway restore again "
            "with --replace"
        )
    while True:
        version = await stored_version(db)
        if version > newest:
            raise NewerSchema(
                f"the database holds schema version {version}, written by a newer "
                f"bot-gateway; this one knows up to {newest}: upgrade it"
            )
        if version == newest:
            return version
        until = utcnow() + timedelta(seconds=LEASE_SECONDS)
        if await leases.hold(LEASE, owner, until):
            break
        if asyncio.get_running_loop().time() > deadline:
            raise StorageUnavailable("another process has been migrating the database too long")
        await asyncio.sleep(POLL_SECONDS)  # another process runs the steps: wait for it
    try:
        for number, what, step in steps:
            if number <= version:
                continue
            log.info("schema: step %d: %s", number, what)
            await step(db)
            await db["meta"].update_one(_VERSION, {"$max": {"version": number}}, upsert=True)
            version = number
    finally:
        await leases.drop(LEASE, owner)
    return version
