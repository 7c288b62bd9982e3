"""Opening the database: the embedded server or an external MongoDB, plus repositories."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pymongo
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import PyMongoError

from storage.agents import AgentsRepository
from storage.api_tokens import ApiTokensRepository
from storage.channels import ChannelsRepository
from storage.contacts import ContactsRepository
from storage.conversations import ConversationsRepository
from storage.embedded import (
    DataDirBusy,
    DataDirLock,
    EmbeddedServer,
    advertisement_path,
    credentials,
    read_advertised_uri,
    write_private,
)
from storage.errors import StorageUnavailable
from storage.events import EventsRepository
from storage.expiry import Expiring, Expiry
from storage.faqs import FaqsRepository
from storage.leases import LeasesRepository
from storage.messages import MessagesRepository
from storage.notes import NotesRepository
from storage.outbox import OutboxRepository
from storage.pages import PageReader
from storage.records import Database, Document
from storage.replies import RepliesRepository
from storage.revocations import RevocationsRepository
from storage.schema import migrate
from storage.signins import SignInFailuresRepository
from storage.subscriptions import SubscriptionsRepository
from storage.uploads import UploadsRepository


# What opening the database reads of the configuration (gateway.config.StorageConfig):
# a protocol, so that storage imports nothing of the gateway above it.
class EmbeddedSettings(Protocol):
    @property
    def cache_size(self) -> str: ...
    @property
    def start_timeout_seconds(self) -> float: ...


class StorageSettings(Protocol):
    @property
    def uri(self) -> str: ...
    @property
    def database(self) -> str: ...
    @property
    def timeout_seconds(self) -> float: ...
    @property
    def write_concern(self) -> str: ...
    @property
    def is_embedded(self) -> bool: ...
    @property
    def embedded(self) -> EmbeddedSettings: ...


log = logging.getLogger("gateway.storage")

INDEX_TIMEOUT_SECONDS = 300  # longer than a request may wait: index builds, bulk expiry


class CommandCounts(monitoring.CommandListener):
    """Commands sent to the database by name: its round trips, for ``/metrics``."""

    def __init__(self) -> None:
        self.by_name: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.by_name[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@dataclass
class Storage:
    """The database handle and one repository per collection."""

    client: AsyncMongoClient[Document]
    uri: str
    db: Database
    pages: PageReader
    agents: AgentsRepository
    api_tokens: ApiTokensRepository
    channels: ChannelsRepository
    contacts: ContactsRepository
    messages: MessagesRepository
    outbox: OutboxRepository
    leases: LeasesRepository
    revocations: RevocationsRepository
    sign_in_failures: SignInFailuresRepository
    faqs: FaqsRepository
    replies: RepliesRepository
    notes: NotesRepository
    conversations: ConversationsRepository
    events: EventsRepository
    subscriptions: SubscriptionsRepository
    uploads: UploadsRepository
    embedded: EmbeddedServer | None = None
    lock: DataDirLock | None = None
    data_dir: Path | None = None
    # Why the database cannot serve now, when we know (the embedded server restarting).
    trouble: str | None = None
    commands: CommandCounts = field(default_factory=CommandCounts)
    expiry: Expiry = field(init=False)  # deletes what the server does not (embedded)

    def __post_init__(self) -> None:
        self.expiry = Expiry.of(self.db)

    @classmethod
    def connect(
        cls,
        uri: str,
        database: str,
        *,
        embedded: EmbeddedServer | None = None,
        lock: DataDirLock | None = None,
        data_dir: Path | None = None,
        sole_writer: bool | None = None,
        **client_options: Any,
    ) -> Storage:
        """A Storage on ``uri``; ``client_options`` go to ``AsyncMongoClient``.
        ``sole_writer``: no other process writes the database (by default, where the
        server is our embedded one: its data dir admits one gateway)."""
        # tz_aware: every datetime we read back is UTC-aware, like the ones we write.
        # journal: a write is acknowledged only once it is in the journal, so what we
        # acknowledge (a webhook, a queued message, a send's outcome) survives the
        # server's kill -9. Without it the embedded server lost ~100 ms of acknowledged
        # writes (measured); a replica set's default, majority, journals already.
        commands = CommandCounts()
        listeners = [commands, *client_options.pop("event_listeners", [])]
        options = {"tz_aware": True, "appname": "bot-gateway", "journal": True}
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            uri, event_listeners=listeners, **{**options, **client_options}
        )
        db = client[database]
        pages = PageReader()
        alone = embedded is not None if sole_writer is None else sole_writer
        conversations = ConversationsRepository(db, pages, sole_writer=alone)
        return cls(
            commands=commands,
            client=client,
            uri=uri,
            db=db,
            pages=pages,
            agents=AgentsRepository(db, pages),
            api_tokens=ApiTokensRepository(db, pages),
            channels=ChannelsRepository(db, pages),
            contacts=ContactsRepository(db, pages),
            messages=MessagesRepository(db, pages, conversations),
            outbox=OutboxRepository(db, sole_writer=alone),
            leases=LeasesRepository(db),
            revocations=RevocationsRepository(db),
            sign_in_failures=SignInFailuresRepository(db),
            faqs=FaqsRepository(db, pages),
            replies=RepliesRepository(db, pages),
            notes=NotesRepository(db, pages),
            conversations=conversations,
            events=EventsRepository(db),
            subscriptions=SubscriptionsRepository(db, pages),
            uploads=UploadsRepository(db),
            embedded=embedded,
            lock=lock,
            data_dir=data_dir,
        )

    @classmethod
    def open(cls, config: StorageSettings, data_dir: Path, *, attach: bool = False) -> Storage:
        """Connect to ``config.uri``, starting the embedded server when it says so.

        With ``attach`` a data dir owned by a running gateway is used through the
        database that gateway advertises; without it, such a data dir is an error.
        """
        # Every operation gives up after the timeout (pymongo's client-side timeout),
        # so requests answer 503 quickly while the database is unreachable.
        options: dict[str, Any] = {"timeoutMS": int(config.timeout_seconds * 1000)}
        if not config.is_embedded:
            w = "majority" if config.write_concern == "majority" else 1
            return cls.connect(config.uri, config.database, w=w, **options)
        lock = DataDirLock(data_dir)
        if not lock.acquire():
            if attach:
                uri = read_advertised_uri(data_dir, config.embedded.start_timeout_seconds)
                return cls.connect(uri, config.database, **options)
            owner = _read_pid(lock.path)
            if owner is None or _alive(owner) or not _outlived(lock, config):
                shown = f" (pid {owner})" if owner else ""
                raise DataDirBusy(
                    f"data dir {data_dir} is in use by another bot-gateway{shown}; "
                    "stop it or pass a different --data-dir"
                )
        store = str(data_dir / "db")
        timeout = config.embedded.start_timeout_seconds
        try:
            server = EmbeddedServer(
                store,
                workdir=data_dir,
                cache_size=config.embedded.cache_size,
                inherit_fds=(lock.fd,),
                login=credentials(data_dir, store, timeout),
            )
            uri = server.start(timeout)
        except BaseException:
            lock.release()
            raise
        log.info("embedded database started (pid %s) with data in %s", server.pid, store)
        # Holds the database's password: the gateway's user alone may read it.
        write_private(advertisement_path(data_dir), json.dumps({"uri": uri, "pid": os.getpid()}))
        return cls.connect(
            uri, config.database, embedded=server, lock=lock, data_dir=data_dir, **options
        )

    async def ensure_indexes(
        self, message_retention_seconds: int, event_retention_seconds: int = 48 * 3600
    ) -> None:
        """Create the indexes, then bring the data to this code's schema version
        (storage/schema.py); also learns how the server executes page queries."""
        with pymongo.timeout(INDEX_TIMEOUT_SECONDS):  # building one on a big collection
            build = await self.client.admin.command("buildInfo")
            self.pages.windowed = "secantusVersion" in build
            await self.agents.ensure_indexes()
            await self.api_tokens.ensure_indexes()
            await self.channels.ensure_indexes()
            await self.contacts.ensure_indexes()
            await self.messages.ensure_indexes(
                message_retention_seconds, server_expires=self.server_expires
            )
            await self.uploads.ensure_indexes(  # they expire with their messages
                message_retention_seconds, server_expires=self.server_expires
            )
            await self.notes.ensure_indexes(  # and so do the notes beside them
                message_retention_seconds, server_expires=self.server_expires
            )
            await self.outbox.ensure_indexes()
            await self.revocations.ensure_indexes()
            await self.sign_in_failures.ensure_indexes()
            await self.faqs.ensure_indexes()
            await self.replies.ensure_indexes()
            await self.conversations.ensure_indexes()
            await self.events.ensure_indexes(
                event_retention_seconds, server_expires=self.server_expires
            )
            await self.subscriptions.ensure_indexes(  # their delivery logs, as long as events
                event_retention_seconds, server_expires=self.server_expires
            )
            if self.pages.windowed:  # where the page windows start (storage/newest.py)
                await self.pages.newest.track(self.messages.collection, stable=True)
                await self.pages.newest.track(self.contacts.collection, stable=True)
                await self.pages.newest.track(self.conversations.collection, stable=False)
        await migrate(self.db, self.leases)  # storage/schema.py: the data's own version

    @property
    def server_expires(self) -> bool:
        """Whether the server deletes expired messages itself (MongoDB's TTL monitor)."""
        return not self.pages.windowed  # learned in ensure_indexes, like the windowing

    async def ping(self, within: float = 2.0) -> None:
        """Raise :class:`StorageUnavailable` unless the server answers ``within`` seconds."""
        if self.trouble is not None:
            raise StorageUnavailable(self.trouble)
        try:
            with pymongo.timeout(within):
                await self.client.admin.command("ping")
        except PyMongoError as exc:
            raise StorageUnavailable(
                f"database did not answer a ping: {type(exc).__name__}"
            ) from None

    async def sweep_expired(self) -> int:
        """Delete expired messages and events now where the server does not, in small
        batches (storage/expiry.py); returns how many."""
        if self.server_expires:
            return 0  # MongoDB's TTL monitor does it
        sweep = self.expiry.sweep
        expired = await sweep(Expiring(self.messages.collection), self.messages.retention_seconds)
        expired += await sweep(Expiring(self.events.collection), self.events.retention_seconds)
        await sweep(Expiring(self.notes.collection), self.notes.retention_seconds)
        for files in (self.uploads.chunks, self.uploads.files):  # with their messages
            await sweep(Expiring(files, "created_at"), self.uploads.retention_seconds)
        await sweep(Expiring(self.subscriptions.deliveries), self.subscriptions.retention_seconds)
        return expired

    async def sweep_forever(self, interval: float) -> None:
        """Expire messages every ``interval`` seconds (where the server does not)."""
        while True:
            await asyncio.sleep(interval)
            try:
                expired = await self.sweep_expired()
            except PyMongoError as exc:
                log.warning("expiring old messages failed: %s", type(exc).__name__)
            else:
                if expired:
                    log.info("%d messages older than the retention deleted", expired)

    async def keep_embedded_running(self, start_timeout: float) -> None:
        """Restart the embedded server whenever it exits, with backoff; say so meanwhile."""
        server = self.embedded
        assert server is not None
        while True:
            code = await server.wait_exit()
            if server.process is None:
                return  # stopped on purpose
            self.trouble = f"the embedded database exited (code {code}) and is restarting"
            log.error("the embedded database exited with code %s; restarting it", code)
            wait = 0.5
            while True:
                try:
                    await server.restart(start_timeout)
                    break
                except StorageUnavailable as exc:
                    log.error("the embedded database did not restart (%s); again in %.1f s",
                              exc, wait)  # fmt: skip
                    await asyncio.sleep(wait)
                    wait = min(30.0, wait * 2)
            self.trouble = None
            log.warning("embedded database restarted (pid %s)", server.pid)

    async def close(self) -> None:
        await self.pages.newest.flush()  # where the next start's page windows begin
        await self.client.close()
        if self.embedded is not None:
            if self.data_dir is not None:
                advertisement_path(self.data_dir).unlink(missing_ok=True)
            self.embedded.stop()
            log.info("embedded database stopped")
        if self.lock is not None:
            self.lock.release()


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _outlived(lock: DataDirLock, config: StorageSettings) -> bool:
    """The gateway that owned the data dir died, and its embedded server (which got
    SIGTERM when it did, and holds the lock it inherited) is stopping: wait for it
    to let go, as a restart right after a crash must. True once the lock is ours."""
    log.warning("the previous gateway on this data dir died; waiting for its database to stop")
    deadline = time.monotonic() + config.embedded.start_timeout_seconds
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if lock.acquire():
            return True
    return False
