"""``bot-gateway backup`` and ``restore``: the archive and what goes into it.

An archive is a gzipped tar: ``manifest.json`` first (what it is, when, of which
schema version, and each member's document count and SHA-256), then one member a
collection (its documents as concatenated BSON, as ``mongodump`` writes them), then,
when asked for, the data dir's secrets. A restore checks every member against the
manifest before it writes anything, so a damaged archive stores nothing.

It holds password hashes, API token hashes and the subscriptions' signing secrets:
it is written readable by its owner alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import bson

from gateway.errors import GatewayError
from storage import backup
from storage.database import Storage
from storage.records import utcnow
from storage.schema import VERSION

FORMAT = "bot-gateway backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SECRETS = ("jwt_secret",)  # in the data dir; the embedded database's login is not one


class BadArchive(GatewayError):
    """The file is not a whole backup this version can read."""


@dataclass(frozen=True)
class Member:
    count: int  # documents (a secret: 1)
    sha256: str
    bytes: int


@dataclass
class Manifest:
    created_at: str
    gateway_version: str
    schema_version: int
    consistency: str  # "snapshot" or "ordered" (storage/backup.py)
    collections: dict[str, Member] = field(default_factory=dict)
    secrets: dict[str, Member] = field(default_factory=dict)

    def shown(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": self.created_at,
            "gateway_version": self.gateway_version,
            "schema_version": self.schema_version,
            "consistency": self.consistency,
            "collections": {n: vars(m) for n, m in self.collections.items()},
            "secrets": {n: vars(m) for n, m in self.secrets.items()},
        }

    @classmethod
    def read(cls, data: bytes) -> Manifest:
        try:
            shown = json.loads(data)
            if shown.get("format") != FORMAT:
                raise BadArchive("it is not a bot-gateway backup")
            if shown["format_version"] > FORMAT_VERSION:
                raise BadArchive(
                    f"it was written in format {shown['format_version']} by a newer "
                    f"bot-gateway; this one reads up to {FORMAT_VERSION}: upgrade it"
                )
            return cls(
                created_at=str(shown["created_at"]),
                gateway_version=str(shown["gateway_version"]),
                schema_version=int(shown["schema_version"]),
                consistency=str(shown["consistency"]),
                collections={n: Member(**m) for n, m in shown["collections"].items()},
                secrets={n: Member(**m) for n, m in shown["secrets"].items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BadArchive(f"its manifest cannot be read ({type(exc).__name__})") from None

    @property
    def documents(self) -> int:
        return sum(m.count for m in self.collections.values())


def _member(name: str) -> str:
    return f"collections/{name}.bson"


async def back_up(
    storage: Storage, out: Path, *, data_dir: Path | None, gateway_version: str
) -> Manifest:
    """Write an archive of ``storage`` (and, given ``data_dir``, its secrets) to
    ``out``, replacing it only once the archive is whole."""
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".backup.") as scratch:
        parts = Path(scratch)
        async with backup.one_moment(storage) as (session, consistency):
            manifest = Manifest(utcnow().isoformat(), gateway_version, 0, consistency)
            for name in await backup.collection_names(storage.db):
                manifest.collections[name] = await _dump(storage, name, session, parts)
        manifest.schema_version = _schema_version(parts)
        found = [data_dir / secret for secret in SECRETS] if data_dir is not None else []
        for path in (path for path in found if path.exists()):
            data = path.read_bytes()
            (parts / path.name).write_bytes(data)
            manifest.secrets[path.name] = Member(1, hashlib.sha256(data).hexdigest(), len(data))
        partial = parts / "archive"
        with _private(partial) as file, tarfile.open(fileobj=file, mode="w:gz") as tar:
            _add_bytes(tar, MANIFEST, json.dumps(manifest.shown(), indent=2).encode())
            for name in manifest.collections:
                tar.add(parts / name, arcname=_member(name))
            for secret in manifest.secrets:
                tar.add(parts / secret, arcname=f"secrets/{secret}")
        os.replace(partial, out)
    return manifest


async def _dump(storage: Storage, name: str, session: Any, parts: Path) -> Member:
    digest, count, size = hashlib.sha256(), 0, 0
    with (parts / name).open("wb") as file:
        async for document in backup.documents(storage.db, name, session):
            data = document.raw
            digest.update(data)
            file.write(data)
            count, size = count + 1, size + len(data)
    return Member(count, digest.hexdigest(), size)


def _schema_version(parts: Path) -> int:
    """The version in the dumped ``meta`` (0: no gateway had started on it)."""
    if not (parts / "meta").exists():
        return 0
    with (parts / "meta").open("rb") as file:
        for data in _documents(file):
            document = bson.decode(data)
            if document["_id"] == "schema":
                return int(document["version"])
    return 0


@contextlib.contextmanager
def _private(path: Path) -> Iterator[IO[bytes]]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        yield file
        file.flush()
        os.fsync(file.fileno())


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(datetime.now().timestamp())
    tar.addfile(info, io.BytesIO(data))


def _documents(file: IO[bytes]) -> Iterator[bytes]:
    """The BSON documents of a stream of them, one by one."""
    while header := file.read(4):
        length = int.from_bytes(header, "little")
        if len(header) < 4 or length < 5:
            raise BadArchive("a collection in it is cut short")
        rest = file.read(length - 4)
        if len(rest) < length - 4:
            raise BadArchive("a collection in it is cut short")
        yield header + rest


def read_archive(path: Path) -> Manifest:
    """The archive's manifest, once every member was checked against it."""
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            manifest = Manifest.read(_read(tar, MANIFEST))
            if manifest.schema_version > VERSION:
                raise BadArchive(
                    f"it holds schema version {manifest.schema_version}, written by a newer "
                    f"bot-gateway ({manifest.gateway_version}); this one knows up to "
                    f"{VERSION}: upgrade it"
                )
            for name, member in manifest.collections.items():
                _check(tar, _member(name), member, count=True)
            for secret, member in manifest.secrets.items():
                _check(tar, f"secrets/{secret}", member, count=False)
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise BadArchive(f"{path}: cannot be read ({exc})") from None
    return manifest


def _read(tar: tarfile.TarFile, name: str) -> bytes:
    with _open(tar, name) as file:
        return file.read()


def _open(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    try:
        file = tar.extractfile(name)
    except KeyError:
        file = None
    if file is None:
        raise BadArchive(f"it lacks {name}")
    return file


def _check(tar: tarfile.TarFile, name: str, member: Member, *, count: bool) -> None:
    digest, found, size = hashlib.sha256(), 0, 0
    with _open(tar, name) as file:
        chunks = _documents(file) if count else iter(lambda: file.read(1 << 20), b"")
        for data in chunks:
            digest.update(data)
            found, size = found + 1, size + len(data)
    if (digest.hexdigest(), size) != (member.sha256, member.bytes) or (
        count and found != member.count
    ):
        raise BadArchive(f"{name} in it does not match its manifest: the archive is damaged")


@dataclass(frozen=True)
class Restored:
    manifest: Manifest
    secrets: list[str]  # those written into the data dir


async def restore(
    storage: Storage, path: Path, manifest: Manifest, *, data_dir: Path, replace: bool
) -> Restored:
    """Write the archive at ``path``, its ``manifest`` checked by :func:`read_archive`,
    into ``storage``, and its secrets into ``data_dir``.
    :class:`storage.backup.NotEmpty` if the database holds data and not ``replace``."""
    await backup.begin_restore(storage.db, replace=replace)
    with tarfile.open(path, mode="r:gz") as tar:
        for name in manifest.collections:
            with _open(tar, _member(name)) as file:
                for batch in _batches(_documents(file)):
                    await backup.write(storage.db, name, batch)
        written = []
        for secret in manifest.secrets:
            _write_private(data_dir / secret, _read(tar, f"secrets/{secret}"))
            written.append(secret)
    await backup.finish_restore(storage.db)
    return Restored(manifest, written)


def _batches(documents: Iterator[bytes]) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    size = 0
    for data in documents:
        full = len(batch) >= backup.BATCH_DOCUMENTS or size + len(data) > backup.BATCH_BYTES
        if batch and full:
            yield batch
            batch, size = [], 0
        batch.append(data)
        size += len(data)
    if batch:
        yield batch


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.restoring")
    aside.unlink(missing_ok=True)
    with _private(aside) as file:
        file.write(data)
    os.replace(aside, path)
