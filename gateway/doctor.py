"""``bot-gateway doctor``: checks an installation and says, one line each, what is
right, and what is wrong and what to do about it.

The configuration; the data dir's disk; the database (reachable, its server, a
replica set where it must be one, its clock, the indexes and retentions this version
makes, the data's schema version); each channel at its provider (credentials, the
webhook it has registered, against this channel's mode); and whether PUBLIC_URL
answers from here. It changes nothing but the channels' records, which every start
writes too.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pymongo.errors import PyMongoError
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from gateway.channels import ChannelSet
from gateway.config import Config
from gateway.database import open_storage
from storage.database import Storage
from storage.errors import StorageUnavailable
from storage.inspection import DatabaseFacts, inspect

MIN_FREE_BYTES = 1 << 30  # below this under the data dir, the database may stop
MAX_CLOCK_OFFSET_SECONDS = 2.0  # leases and expiry compare the two clocks


@dataclass(frozen=True)
class Check:
    area: str  # "database", "channel tg", ...
    ok: bool
    detail: str  # what was found; or what is wrong, and what to do

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.area}: {self.detail}"

    def shown(self) -> dict[str, Any]:
        return asdict(self)


async def examine(config: Config, source: str) -> list[Check]:
    """Every check, in the order an operator would look (``source``: where the
    configuration came from)."""
    declared = ", ".join(c.name for c in config.channels) or "none"
    checks = [Check("config", True, f"{source}; channels declared: {declared}")]
    checks.append(_disk(config.data_dir))
    try:
        storage = open_storage(config, attach=True)
    except (StorageUnavailable, PyMongoError, OSError) as exc:
        checks.append(Check("database", False, f"cannot be opened: {exc}"))
        return [*checks, *await _public_url(config)]
    try:
        database = await _database(storage, config)
        checks += database
        if database[0].ok:  # reachable
            checks += await _channels(config, storage)
    finally:
        await storage.close()
    return [*checks, *await _public_url(config)]


def _disk(data_dir: Path) -> Check:
    where = data_dir if data_dir.exists() else data_dir.resolve().parent
    usage = shutil.disk_usage(where)
    free = f"{usage.free / (1 << 30):.1f} GiB free of {usage.total / (1 << 30):.1f} GiB"
    if usage.free < MIN_FREE_BYTES:
        return Check("disk", False, f"{free} under {data_dir}: free some, or move --data-dir")
    return Check("disk", True, f"{free} under {data_dir}")


async def _database(storage: Storage, config: Config) -> list[Check]:
    settings = config.storage
    try:
        facts = await inspect(
            storage, settings.message_retention_seconds, config.events.retention_hours * 3600
        )
    except PyMongoError as exc:
        return [Check("database", False, f"unreachable ({type(exc).__name__}): is it running, "
                      "and is MONGODB_URI (storage.uri) right?")]  # fmt: skip
    checks = [Check("database", True, f"{facts.server}, reachable")]
    if not settings.is_embedded:
        checks.append(_replica_set(facts, settings.write_concern))
    checks.append(_clock(facts))
    checks.append(_schema(facts))
    checks.extend(_indexes(facts))
    return checks


def _replica_set(facts: DatabaseFacts, write_concern: str) -> Check:
    if facts.replica_set is None:
        return Check("replica set", False, "a standalone server: a write survives the loss of "
                     "a server only on a replica set, and several gateways need one; start mongod "
                     "with --replSet and run rs.initiate()")  # fmt: skip
    return Check(
        "replica set", True, f"{facts.replica_set}, writes acknowledged by {write_concern}"
    )


def _clock(facts: DatabaseFacts) -> Check:
    offset = facts.clock_offset_seconds
    if abs(offset) > MAX_CLOCK_OFFSET_SECONDS:
        return Check("clock", False, f"the database's clock is {offset:+.1f} s from this one: "
                     "sync both (NTP); leases and expiry compare them")  # fmt: skip
    return Check("clock", True, f"within {MAX_CLOCK_OFFSET_SECONDS:g} s of the database's")


def _schema(facts: DatabaseFacts) -> Check:
    if facts.schema > facts.code_schema:
        return Check("schema", False, f"the data is at version {facts.schema}, written by a "
                     f"newer gateway; this one knows {facts.code_schema}: upgrade it")  # fmt: skip
    if facts.schema < facts.code_schema:
        return Check("schema", True, f"version {facts.schema}; this gateway brings it to "
                     f"{facts.code_schema} at its start")  # fmt: skip
    return Check("schema", True, f"version {facts.schema}, this gateway's")


def _indexes(facts: DatabaseFacts) -> list[Check]:
    if facts.fresh:
        return [Check("indexes", True, "an empty database: the first start makes them")]
    checks = [
        Check(
            "indexes",
            False,
            f"{name} lacks {', '.join(absent)}: a start of this gateway "
            "makes them (they take a while on a big collection)",
        )
        for name, absent in sorted(facts.missing.items())
    ]
    checks += [
        Check(
            "retention",
            False,
            f"{name} expires after {found} s, not the configured "
            f"{wanted} s: a start of this gateway applies it",
        )
        for name, (wanted, found) in sorted(facts.ttl.items())
    ]
    return checks or [Check("indexes", True, "every index and retention this version makes")]


async def _channels(config: Config, storage: Storage) -> list[Check]:
    channels = await ChannelSet.open(config, storage)
    try:
        checks = [
            Check(f"channel {name}", True, f"off: {why}") for name, why in channels.off.items()
        ]
        for channel in channels:
            area = f"channel {channel.name}"
            findings = await channel.diagnose()
            checks += [Check(area, f.ok, f"{f.what}: {f.detail}") for f in findings]
            if not findings:
                checks.append(Check(area, True, f"on ({channel.type}, {channel.mode})"))
        return checks
    finally:
        await channels.close()


async def _public_url(config: Config) -> list[Check]:
    url = config.server.public_url
    if not url:
        return [Check("public url", True, "not set: providers cannot call webhooks here "
                      "(Telegram can poll; WhatsApp needs PUBLIC_URL)")]  # fmt: skip
    probe = url.rstrip("/") + "/healthz"
    try:
        answer = await AsyncHTTPClient().fetch(probe, raise_error=False, request_timeout=10)
    except (OSError, HTTPClientError) as exc:
        return [Check("public url", False, f"{probe} cannot be reached from here ({exc}): is the "
                      "gateway running, and does the proxy forward to it?")]  # fmt: skip
    if answer.code != 200:
        return [Check("public url", False, f"{probe} answered {answer.code}, not 200: does "
                      "it reach this gateway?")]  # fmt: skip
    return [Check("public url", True, f"{probe} answers")]
