"""`bot-gateway backup` and `restore`, the installed commands: an archive taken
while webhooks arrive restores into a new data dir and into a database reached by
URI, whole, serving the same agents, messages and files."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import bson
import pytest

from gateway.backup import MANIFEST, read_archive
from gateway.config import StorageConfig
from storage import backup
from storage.database import Storage
from storage.models import conversation_id
from testkit.helpers import Client, async_wait_until
from testkit.processes import BOT_GATEWAY, Gateway, call
from testkit.processes import stop as stop_process

SECRET = "mock-secret-for-backups"
RECEIPT = b"%PDF-1.7\n" + bytes(range(256)) * 1600 + b"%%EOF"  # 400 KB: two chunks


def _configure(workdir: Path, **more: Any) -> Gateway:
    workdir.mkdir(exist_ok=True)
    gateway = Gateway(workdir)
    gateway.config.write_text(json.dumps({
        "server": {"port": gateway.port},
        "log": {"level": "WARNING"},
        "channels": [{"name": "mock", "type": "mock", "secret": SECRET}],
        **more,
    }))  # fmt: skip
    return gateway


async def _run(gateway: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    """A command on the gateway's config, run while this loop keeps serving."""
    command = gateway.command(*args[:1]) + list(args[1:])
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert b"Traceback" not in err, err.decode()
    return subprocess.CompletedProcess(command, process.returncode or 0, out.decode(), err.decode())


def _archived(path: Path) -> dict[str, list[dict[str, Any]]]:
    import tarfile

    with tarfile.open(path, "r:gz") as tar:
        names = json.loads(tar.extractfile(MANIFEST).read())["collections"]  # type: ignore[union-attr]
        return {
            name: bson.decode_all(tar.extractfile(f"collections/{name}.bson").read())  # type: ignore[union-attr]
            for name in names
        }


async def _contents(uri: str, database: str) -> dict[str, list[bytes]]:
    storage = Storage.connect(uri, database)
    try:
        found = {
            name: [d.raw async for d in backup.documents(storage.db, name, None)]
            for name in await backup.collection_names(storage.db)
        }
    finally:
        await storage.close()
    return {name: documents for name, documents in found.items() if documents}


def _raw(path: Path) -> dict[str, list[bytes]]:
    return {
        name: [bson.encode(d) for d in documents]
        for name, documents in _archived(path).items()
        if documents
    }


async def test_a_backup_taken_under_load_restores_whole_elsewhere(
    tmp_path: Path, mongo_uri: str
) -> None:
    source = _configure(tmp_path / "source")
    assert source.create_agent("ana", "correct horse").returncode == 0
    source.start()
    base = source.url("")
    status, tokens = call(base, "POST", "/auth/token/", {"username": "ana",
                                                          "password": "correct horse"})  # fmt: skip
    assert status == 200
    attached = Storage.open(StorageConfig(), source.workdir / "data", attach=True)
    try:
        receipt = await attached.uploads.put(RECEIPT, "application/pdf", "receipt.pdf")
    finally:
        await attached.close()

    client = Client(base)
    acknowledged: list[str] = []
    stop = asyncio.Event()

    async def load(worker: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            body = {"contact_id": worker, "message": f"hi {n}", "message_id": f"{worker}-{n}"}
            status, _ = await client.fetch("POST", "/webhooks/mock/mock/", json_body=body,
                                           headers={"X-Mock-Secret": SECRET})  # fmt: skip
            assert status < 300
            acknowledged.append(f"hi {n}")

    workers = [asyncio.create_task(load(w)) for w in range(4)]
    try:

        async def some() -> bool:
            return len(acknowledged) >= 40

        await async_wait_until(some, 60, "webhooks to be acknowledged")
        before = len(acknowledged)
        archive = tmp_path / "nightly.tar.gz"
        made = await _run(source, "backup", "--out", str(archive), "--with-secrets")
        plain = tmp_path / "plain.tar.gz"
        assert (await _run(source, "backup", "--out", str(plain))).returncode == 0
        during = len(acknowledged)
    finally:
        stop.set()
        await asyncio.gather(*workers)
        assert stop_process(source.process) == 0  # type: ignore[arg-type]
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip().endswith(f"to {archive} (as of one moment: snapshot)")

    # Whole: every message acknowledged before it began, and what each one names.
    held = _archived(archive)
    assert before <= len(held["messages"]) <= during
    contacts = {c["_id"] for c in held["contacts"]}
    conversations = {c["_id"] for c in held["conversations"]}
    assert all(m["contact_id"] in contacts for m in held["messages"])
    assert all(conversation_id(m["contact_id"]) in conversations for m in held["messages"])
    assert len(held["upload_chunks"]) == 2
    assert read_archive(archive).secrets
    assert not read_archive(plain).secrets

    # Into a new data dir on the embedded server, with the secrets: sign-ins go on.
    copy = _configure(tmp_path / "copy")
    restored = copy.run("restore", "--from", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert "sign-ins made before the backup still work" in restored.stdout
    stored = Storage.open(StorageConfig(), copy.workdir / "data")  # as restored, before it serves
    try:
        contents = await _contents(stored.uri, "bot_gateway")
        assert _without_marks(contents) == _without_marks(_raw(archive))
        upload = await stored.uploads.get(receipt.id)
        assert upload is not None
        assert b"".join([c async for c in stored.uploads.chunks_of(upload)]) == RECEIPT
    finally:
        await stored.close()
    copy.start()
    try:
        listed = call(copy.url(""), "GET", "/api/v1/messages/", token=tokens["access"])
        assert listed[0] == 200
    finally:
        copy.process.terminate()  # type: ignore[union-attr]
        assert copy.process.wait(30) == 0  # type: ignore[union-attr]

    # Into a standalone server reached by URI, without them: agents sign in again.
    database = f"restored_{uuid.uuid4().hex[:12]}"
    remote = _configure(tmp_path / "remote", storage={"uri": mongo_uri,
                                                               "database": database})  # fmt: skip
    restored = remote.run("restore", "--from", str(plain))
    assert restored.returncode == 0, restored.stderr
    assert "sign-ins made before the backup have ended: agents sign in again" in restored.stdout
    assert _without_marks(await _contents(mongo_uri, database)) == _without_marks(_raw(plain))
    remote.start()
    try:
        remote_base = remote.url("")
        assert call(remote_base, "GET", "/api/v1/messages/", token=tokens["access"])[0] == 401
        again = {"username": "ana", "password": "correct horse"}
        assert call(remote_base, "POST", "/auth/token/", again)[0] == 200

        # A second restore into it, now that it holds data, is refused and changes nothing.
        kept = ("agents", "contacts", "messages", "uploads", "upload_chunks")
        before_it = await _contents(mongo_uri, database)
        twice = remote.run("restore", "--from", str(archive))
        assert twice.returncode == 1
        assert "the database holds data (" in twice.stderr
        assert "pass --replace to delete it first" in twice.stderr
        after_it = await _contents(mongo_uri, database)
        assert [after_it[n] for n in kept] == [before_it[n] for n in kept]
    finally:
        remote.process.terminate()  # type: ignore[union-attr]
        assert remote.process.wait(30) == 0  # type: ignore[union-attr]
        dropping = Storage.connect(mongo_uri, database)
        await dropping.client.drop_database(database)
        await dropping.close()


def _without_marks(contents: dict[str, list[bytes]]) -> dict[str, list[bytes]]:
    """What a restored gateway keeps as the backup had it: all but its own hints of
    where the newest documents are and where expiry got to, which it writes as it runs."""
    kept = {name: docs for name, docs in contents.items() if name != "newest_keys"}
    kept["meta"] = [d for d in kept.get("meta", []) if bson.decode(d)["_id"] == "schema"]
    return kept


def test_restoring_into_a_data_dir_in_use_is_refused(tmp_path: Path) -> None:
    gateway = _configure(tmp_path)
    gateway.start()
    try:
        archive = tmp_path / "backup.tar.gz"
        assert gateway.run("backup", "--out", str(archive)).returncode == 0
        refused = gateway.run("restore", "--from", str(archive))
        assert refused.returncode == 1
        assert "is in use by another bot-gateway" in refused.stderr
        missing = gateway.run("restore", "--from", str(tmp_path / "nothing.tar.gz"))
        assert (missing.returncode, missing.stderr.splitlines()) == (1, [
            f"bot-gateway: error: {tmp_path / 'nothing.tar.gz'}: cannot be read "
            f"([Errno 2] No such file or directory: '{tmp_path / 'nothing.tar.gz'}')"
        ])  # fmt: skip
    finally:
        gateway.process.terminate()  # type: ignore[union-attr]
        gateway.process.wait(30)  # type: ignore[union-attr]
    # Stopped, its own data dir holds data (an agent): refused, then --replace.
    assert gateway.create_agent("zoe", "correct horse").returncode == 0
    held = gateway.run("restore", "--from", str(archive))
    assert held.returncode == 1
    assert "the database holds data (" in held.stderr, held.stderr
    replaced = gateway.run("restore", "--from", str(archive), "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stdout.startswith("restored ")
    assert gateway.create_agent("zoe", "correct horse").returncode == 0  # she was replaced


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_the_archive_is_a_required_argument(command: str) -> None:
    done = subprocess.run([BOT_GATEWAY, command], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "required" in done.stderr
    assert "Traceback" not in done.stderr


PREVIOUS_RELEASE = Path(__file__).parents[1] / "fixtures" / "previous_release.tar.gz"


def test_the_previous_releases_data_restored_is_served_by_this_one(tmp_path: Path) -> None:
    # Three agents (cai signed out), three contacts with three messages and a reply
    # each, an FAQ: tests/fixtures/make_previous_release.py.
    gateway = _configure(tmp_path)
    restored = gateway.run("restore", "--from", str(PREVIOUS_RELEASE))
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.startswith("restored 58 documents of ")
    gateway.start()
    try:
        base = gateway.url("")
        signed_in = {}
        for name in ("ana", "bea", "cai"):  # their passwords' hashes came along
            status, tokens = call(base, "POST", "/auth/token/",
                                  {"username": name, "password": "correct horse"})  # fmt: skip
            assert status == 200, tokens
            signed_in[name] = tokens["access"]
        status, agents = call(base, "GET", "/api/v1/agents/", token=signed_in["bea"])
        assert status == 200
        roles = {a["username"]: a["role"] for a in agents["results"]}
        assert roles == {"ana": "admin", "bea": "agent", "cai": "agent"}  # the first: admin
        listed = {
            path: call(base, "GET", path, token=signed_in["bea"])
            for path in ("/api/v1/conversations/", "/api/v1/messages/", "/api/v1/faqs/")
        }
        assert {
            path: (status, len(page["results"])) for path, (status, page) in listed.items()
        } == {
            "/api/v1/conversations/": (200, 3),
            "/api/v1/messages/": (200, 12),
            "/api/v1/faqs/": (200, 1),
        }
        unread = [c["unread"] for c in listed["/api/v1/conversations/"][1]["results"]]
        assert unread == [3, 3, 3]  # one count for everyone became each agent's own
        sent = [m for m in listed["/api/v1/messages/"][1]["results"] if m["direction"] == "out"]
        assert {m["status"] for m in sent} == {"sent"}
        new_agent = {"username": "dan", "password": "correct horse"}
        assert call(base, "POST", "/api/v1/agents/", new_agent, token=signed_in["bea"])[0] == 403
        assert call(base, "POST", "/api/v1/agents/", new_agent, token=signed_in["ana"])[0] == 201
    finally:
        gateway.process.terminate()  # type: ignore[union-attr]
        assert gateway.process.wait(30) == 0  # type: ignore[union-attr]
