"""The stored data's version (storage/schema.py): steps run once, in order, by one
process at a time, resume after a crash, and a newer database is refused."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.collection import AsyncCollection

from gateway.backup import read_archive, restore
from storage import schema
from storage.database import Storage
from storage.models import Role
from storage.records import Database
from storage.schema import NewerSchema, migrate, stored_version
from testkit.helpers import RETENTION_SECONDS, async_wait_until


async def _as_the_previous_release_left_it(storage: Storage) -> None:
    """No schema version, and agents without roles."""
    await storage.db["meta"].delete_one({"_id": "schema"})
    await storage.agents.collection.update_many({}, {"$unset": {"role": ""}})


async def test_a_database_of_the_previous_release_is_brought_up_at_start(storage: Storage) -> None:
    assert await stored_version(storage.db) == schema.VERSION  # the fixture's start
    made = [await storage.agents.create(name, "hash") for name in ("owner", "bea", "cai")]
    await _as_the_previous_release_left_it(storage)

    await storage.ensure_indexes(RETENTION_SECONDS)
    assert await stored_version(storage.db) == schema.VERSION
    roles = {m.username: (await storage.agents.get(m.id)).role for m in made}  # type: ignore[union-attr]
    assert roles == {"owner": Role.ADMIN, "bea": Role.AGENT, "cai": Role.AGENT}
    await storage.agents.update(made[1].id, {"role": Role.ADMIN.value})
    await storage.ensure_indexes(RETENTION_SECONDS)  # once: later changes stay
    assert (await storage.agents.get(made[1].id)).role is Role.ADMIN  # type: ignore[union-attr]


async def test_ended_sign_ins_kept_as_a_list_stay_refused_with_a_date(storage: Storage) -> None:
    agent = await storage.agents.create("ana", "hash")
    family = "0c9a1c52-5a55-4c3b-9a8e-6b0d6f6b2f6e"
    # As an early version kept them: a bare list, and no schema version past 1.
    await storage.agents.collection.update_one(
        {"_id": agent.id}, {"$set": {"ended_sign_ins": [family, "not a family"]}}
    )
    await storage.db["meta"].update_one({"_id": "schema"}, {"$set": {"version": 1}})

    await storage.ensure_indexes(RETENTION_SECONDS)
    assert await stored_version(storage.db) == schema.VERSION
    stored = await storage.agents.collection.find_one({"_id": agent.id})
    assert stored is not None
    assert "ended_sign_ins" not in stored
    assert list(stored["signed_out"]) == [family]  # dated: dropped once it cannot be used
    assert (await storage.agents.get(agent.id)).ended_sign_ins == {family}  # type: ignore[union-attr]


async def test_a_crash_between_steps_resumes_at_the_step_that_did_not_finish(
    storage: Storage,
) -> None:
    await storage.db["meta"].delete_one({"_id": "schema"})
    ran: list[int] = []

    def step(n: int, crash: bool = False):  # type: ignore[no-untyped-def]
        async def run(db: Database) -> None:
            ran.append(n)
            if crash:
                raise RuntimeError("the process died here")

        return (n, f"step {n}", run)

    with pytest.raises(RuntimeError):
        await migrate(storage.db, storage.leases, [step(1), step(2, crash=True), step(3)])
    assert (ran, await stored_version(storage.db)) == ([1, 2], 1)
    # At once: the crashed run gave its lease up (this run is another owner).
    assert await migrate(storage.db, storage.leases, [step(1), step(2), step(3)]) == 3
    assert ran == [1, 2, 2, 3]  # the first is not run again
    assert schema.LEASE not in await storage.leases.holders()  # given up, no trace


async def test_two_processes_starting_at_once_run_each_step_once(
    storage: Storage, mongo_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema, "POLL_SECONDS", 0.01)
    await storage.db["meta"].delete_one({"_id": "schema"})
    other = Storage.connect(mongo_uri, storage.db.name)
    ran: list[str] = []
    started, release = asyncio.Event(), asyncio.Event()
    looked = 0
    read_version = schema.stored_version

    async def counted(db: Database) -> int:
        nonlocal looked
        looked += 1
        return await read_version(db)

    async def slow(db: Database) -> None:
        ran.append("slow")
        started.set()
        await release.wait()

    steps = [(1, "slow", slow)]
    first = asyncio.ensure_future(migrate(storage.db, storage.leases, steps))
    await started.wait()
    monkeypatch.setattr(schema, "stored_version", counted)
    second = asyncio.ensure_future(migrate(other.db, other.leases, steps))

    async def waited() -> bool:  # it looked for the version again and again
        return looked >= 3

    await async_wait_until(waited, 10, "the second process to wait for the version")
    assert not second.done()
    release.set()
    try:
        assert await asyncio.gather(first, second) == [1, 1]
    finally:
        await other.close()
    assert ran == ["slow"]


async def test_a_database_written_by_a_newer_gateway_is_refused(storage: Storage) -> None:
    await storage.db["meta"].update_one(
        {"_id": "schema"}, {"$set": {"version": schema.VERSION + 1}}, upsert=True
    )
    with pytest.raises(NewerSchema, match=r"newer bot-gateway; this one knows up to \d+: upgrade"):
        await storage.ensure_indexes(RETENTION_SECONDS)


PREVIOUS_RELEASE = Path(__file__).parents[1] / "fixtures" / "previous_release.tar.gz"


async def test_the_previous_releases_database_comes_up_through_crashes_in_a_step_and_between(
    mongo_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tests/fixtures/make_previous_release.py says how the archive was made: the
    # previous release's gateway, used by three agents and three contacts.
    manifest = read_archive(PREVIOUS_RELEASE)
    assert manifest.schema_version == 0 < schema.VERSION
    target = Storage.connect(mongo_uri, f"previous_{uuid.uuid4().hex[:12]}")
    try:
        await restore(target, PREVIOUS_RELEASE, manifest, data_dir=tmp_path, replace=False)
        agents = target.agents.collection

        async def roles() -> dict[str, str | None]:
            return {a["username"]: a.get("role") async for a in agents.find({})}

        assert await roles() == {"ana": None, "bea": None, "cai": None}

        # The process dies inside the first step: the admin given, the agents not yet.
        update_many = AsyncCollection.update_many

        async def dies(self: AsyncCollection[Any], *args: Any, **kwargs: Any) -> Any:
            if self.name == "agents":
                raise RuntimeError("the process died here")
            return await update_many(self, *args, **kwargs)

        monkeypatch.setattr(AsyncCollection, "update_many", dies)
        with pytest.raises(RuntimeError):
            await target.ensure_indexes(RETENTION_SECONDS)
        assert (await stored_version(target.db), await roles()) == (
            0, {"ana": "admin", "bea": None, "cai": None}
        )  # fmt: skip
        monkeypatch.undo()

        # It dies again after the first step, before the next one finished.
        async def crash(db: Database) -> None:
            raise RuntimeError("the process died here")

        with pytest.raises(RuntimeError):
            await migrate(target.db, target.leases, [schema.STEPS[0], (2, "dies", crash)])
        assert await stored_version(target.db) == 1

        await target.ensure_indexes(RETENTION_SECONDS)  # the next start
        assert await stored_version(target.db) == schema.VERSION
        assert await roles() == {"ana": "admin", "bea": "agent", "cai": "agent"}
        ana = await target.agents.get_by_username("ana")
        assert ana is not None
        assert ana.role is Role.ADMIN
        cai = await target.agents.get_by_username("cai")
        assert cai is not None
        assert len(cai.ended_sign_ins) == 1  # signed out in the previous release: still
        # One unread count for everyone became what nobody has read yet (step 3).
        conversations = [c async for c in target.conversations.collection.find({})]
        assert [("unread" in c, c["inbound_count"]) for c in conversations] == [(False, 3)] * 3
        [first, *_] = await target.conversations.get_many([c["_id"] for c in conversations])
        assert (first.unread_for(ana.id), first.unread_for(None)) == (3, 3)
    finally:
        await target.client.drop_database(target.db.name)
        await target.close()


async def test_the_outbox_indexes_of_earlier_versions_are_dropped_once(storage: Storage) -> None:
    messages = storage.messages.collection
    await messages.create_index([("next_attempt_at", 1)], name="outbox")
    await messages.create_index([("contact_id", 1), ("status", 1)], name="unsent_by_contact")
    await storage.db["meta"].update_one({"_id": "schema"}, {"$set": {"version": 4}})
    await storage.ensure_indexes(RETENTION_SECONDS)
    found = await messages.index_information()
    assert ("outbox" in found, "unsent_by_contact" in found) == (False, False)
    assert await stored_version(storage.db) == schema.VERSION
