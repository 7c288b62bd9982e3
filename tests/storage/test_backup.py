"""Backups (gateway/backup.py, storage/backup.py) against the real wire server: what
is restored is byte for byte what was read, and a damaged archive, a newer one, a
database that holds data or a restore cut short store nothing a gateway would use."""

from __future__ import annotations

import gzip
import io
import tarfile
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import bson
import pytest
from bson import Binary, Decimal128

from gateway.backup import BadArchive, back_up, read_archive, restore
from storage import backup
from storage.backup import NotEmpty
from storage.contacts import Sighting
from storage.database import Storage
from storage.errors import StorageUnavailable
from storage.schema import VERSION
from testkit.helpers import RETENTION_SECONDS

RECEIPT = b"%PDF-1.7\n" + bytes(range(256)) * 1600 + b"%%EOF"  # 400 KB: two chunks


@pytest.fixture
async def target(mongo_uri: str) -> AsyncIterator[Storage]:
    """Another database on the same server, with nothing in it."""
    store = Storage.connect(mongo_uri, f"restored_{uuid.uuid4().hex[:12]}")
    try:
        yield store
    finally:
        await store.client.drop_database(store.db.name)
        await store.close()


async def _fill(storage: Storage) -> str:
    """An agent, a contact, a two-chunk file, and values a decode and re-encode would
    change; returns the file's id."""
    await storage.agents.create("ana", "hash")
    await storage.contacts.record_seen_many([Sighting("channel-1", "42", "Bea")])
    upload = await storage.uploads.put(RECEIPT, "application/pdf", "receipt.pdf")
    await storage.db["faqs"].insert_one({
        "_id": "odd",
        "at": datetime(2026, 12, 8, 1, 2, 3, 456000, tzinfo=UTC),
        "price": Decimal128("10.10"),
        "blob": Binary(b"\x00\x01", 5),
        "order": {"z": 1, "a": 2},  # keys in their order, not sorted
    })  # fmt: skip
    return upload.id


def _archived(path: Path) -> dict[str, list[bytes]]:
    """Each collection's documents in the archive, as stored."""
    manifest = read_archive(path)
    with tarfile.open(path, "r:gz") as tar:
        return {
            name: [
                d.raw
                for d in bson.decode_all(
                    tar.extractfile(f"collections/{name}.bson").read(),  # type: ignore[union-attr]
                    backup.RAW,
                )
            ]
            for name, member in manifest.collections.items()
            if member.count
        }


async def _dumped(storage: Storage) -> dict[str, list[bytes]]:
    """Each collection's documents (an empty collection is as good as none)."""
    found = {
        name: [d.raw async for d in backup.documents(storage.db, name, None)]
        for name in await backup.collection_names(storage.db)
    }
    return {name: documents for name, documents in found.items() if documents}


async def test_a_restore_holds_byte_for_byte_what_the_backup_read(
    storage: Storage, target: Storage, tmp_path: Path
) -> None:
    file_id = await _fill(storage)
    (tmp_path / "jwt_secret").write_text("s" * 48)
    out = tmp_path / "backup.tar.gz"
    made = await back_up(storage, out, data_dir=tmp_path, gateway_version="test")
    assert (out.stat().st_mode & 0o777, made.consistency) == (0o600, "snapshot")
    assert made.schema_version == VERSION
    assert made.collections["upload_chunks"].count == 2
    assert "leases" not in made.collections  # who works on what: nobody, after a restore
    names = list(made.collections)
    assert names.index("messages") < names.index("contacts") < names.index("agents")

    hints = "newest_keys"  # where lists start: the source rewrites them as it likes
    read = {n: docs for n, docs in (await _dumped(storage)).items() if n != hints}
    assert {n: docs for n, docs in _archived(out).items() if n != hints} == read

    elsewhere = tmp_path / "restored"
    done = await restore(target, out, read_archive(out), data_dir=elsewhere, replace=False)
    assert done.secrets == ["jwt_secret"]
    assert (elsewhere / "jwt_secret").read_text() == "s" * 48
    assert (elsewhere / "jwt_secret").stat().st_mode & 0o777 == 0o600
    assert await _dumped(target) == _archived(out)
    await target.ensure_indexes(RETENTION_SECONDS)  # as the command does next
    restored = await target.uploads.get(file_id)
    assert restored is not None
    assert b"".join([c async for c in target.uploads.chunks_of(restored)]) == RECEIPT
    assert (await target.agents.get_by_username("ana")) is not None


async def test_a_database_that_holds_data_is_refused_unless_replaced(
    storage: Storage, target: Storage, tmp_path: Path
) -> None:
    await _fill(storage)
    out = tmp_path / "backup.tar.gz"
    await back_up(storage, out, data_dir=None, gateway_version="test")
    await target.agents.create("zed", "hash")
    with pytest.raises(NotEmpty) as refused:
        await restore(target, out, read_archive(out), data_dir=tmp_path, replace=False)
    assert refused.value.collections == ["agents"]
    assert (await target.agents.get_by_username("zed")) is not None  # untouched

    await restore(target, out, read_archive(out), data_dir=tmp_path, replace=True)
    assert await target.agents.get_by_username("zed") is None
    assert await _dumped(target) == _archived(out)
    assert not (tmp_path / "jwt_secret").exists()  # not asked for: not in it


async def test_a_database_a_gateway_only_started_on_takes_a_restore(
    storage: Storage, target: Storage, tmp_path: Path
) -> None:
    await _fill(storage)
    out = tmp_path / "backup.tar.gz"
    await back_up(storage, out, data_dir=None, gateway_version="test")
    await target.ensure_indexes(RETENTION_SECONDS)  # a gateway started and stopped: meta
    await restore(target, out, read_archive(out), data_dir=tmp_path, replace=False)
    assert await _dumped(target) == _archived(out)


def _rewritten(source: Path, out: Path, change: str, edit: bytes | None) -> Path:
    """A copy of the archive with member ``change`` replaced by ``edit``."""
    with tarfile.open(source, "r:gz") as tar, tarfile.open(out, "w:gz") as copy:
        for member in tar.getmembers():
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == change and edit is not None:
                data = edit
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            copy.addfile(info, io.BytesIO(data))
    return out


async def test_a_damaged_or_newer_archive_stores_nothing(
    storage: Storage, target: Storage, tmp_path: Path
) -> None:
    await _fill(storage)
    good = tmp_path / "backup.tar.gz"
    await back_up(storage, good, data_dir=None, gateway_version="test")
    with tarfile.open(good, "r:gz") as tar:
        agents = tar.extractfile("collections/agents.bson").read()  # type: ignore[union-attr]
        manifest = tar.extractfile("manifest.json").read()  # type: ignore[union-attr]
    flipped = agents[:-3] + bytes([agents[-3] ^ 1]) + agents[-2:]
    newer = manifest.replace(f'"schema_version": {VERSION}'.encode(),
                             f'"schema_version": {VERSION + 1}'.encode())  # fmt: skip
    cases = {
        "a flipped bit": (_rewritten(good, tmp_path / "a", "collections/agents.bson", flipped),
                          "collections/agents.bson in it does not match its manifest"),
        "a cut collection": (_rewritten(good, tmp_path / "b", "collections/agents.bson",
                                        agents[:-1]), "cut short"),
        "a newer schema": (_rewritten(good, tmp_path / "c", "manifest.json", newer),
                           f"knows up to {VERSION}: upgrade it"),
        "a cut archive": (_cut(good, tmp_path / "d"), "cannot be read"),
        "not an archive": (_plain(tmp_path / "e"), "cannot be read"),
    }  # fmt: skip
    for label, (path, why) in cases.items():
        with pytest.raises(BadArchive, match=why):
            await restore(target, path, read_archive(path), data_dir=tmp_path, replace=False)
        assert await target.db.list_collection_names() == [], label
    assert read_archive(good).documents > 0


def _cut(source: Path, out: Path) -> Path:
    data = source.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    return out


def _plain(out: Path) -> Path:
    out.write_bytes(gzip.compress(b"not a tar at all"))
    return out


async def test_a_restore_cut_short_is_refused_at_start_until_it_is_done_again(
    storage: Storage, target: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _fill(storage)
    out = tmp_path / "backup.tar.gz"
    await back_up(storage, out, data_dir=None, gateway_version="test")
    write = backup.write

    async def dies_at_contacts(db, name, batch):  # type: ignore[no-untyped-def]
        if name == "contacts":
            raise RuntimeError("the process died here")
        return await write(db, name, batch)

    monkeypatch.setattr(backup, "write", dies_at_contacts)
    with pytest.raises(RuntimeError):
        await restore(target, out, read_archive(out), data_dir=tmp_path, replace=False)
    with pytest.raises(StorageUnavailable, match="a restore into this database did not finish"):
        await target.ensure_indexes(RETENTION_SECONDS)  # a gateway starting on it
    monkeypatch.setattr(backup, "write", write)
    with pytest.raises(NotEmpty):  # half of it is there: not over it without being told
        await restore(target, out, read_archive(out), data_dir=tmp_path, replace=False)
    await restore(target, out, read_archive(out), data_dir=tmp_path, replace=True)
    await target.ensure_indexes(RETENTION_SECONDS)
    assert await _dumped(target) == _archived(out)
