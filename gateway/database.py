"""Opening the database for the gateway and its commands, its password kept out of logs."""

from __future__ import annotations

from gateway.config import Config
from gateway.logs import scrubber
from storage.database import Storage


def open_storage(config: Config, *, attach: bool = False) -> Storage:
    """Open storage (starting the embedded server if configured; ``attach``: or use
    the one a running gateway advertises), and never log its password."""
    storage = Storage.open(config.storage, config.data_dir, attach=attach)
    scrubber.add_uri_password(storage.uri)
    return storage


async def prepare(storage: Storage, config: Config) -> None:
    """Create the indexes with the configured retentions (messages, events)."""
    await storage.ensure_indexes(
        config.storage.message_retention_seconds, config.events.retention_hours * 3600
    )
