"""Helpers shared by the repositories: ids, timestamps and the document shape.

Repositories hand the rest of the gateway plain dicts whose key is ``id``; only
storage code knows that MongoDB calls it ``_id``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

# Namespace for ids derived from provider identifiers (contacts: channel + external id).
ID_NAMESPACE = uuid.UUID("6f1c2a53-8d0e-4c1b-9a57-2b9e5f0c7d41")


def new_id() -> str:
    return str(uuid.uuid4())


def derived_id(*parts: str) -> str:
    """A stable id for a tuple of provider identifiers, so writes need no read first."""
    return str(uuid.uuid5(ID_NAMESPACE, "\x1f".join(parts)))


def utcnow() -> datetime:
    # MongoDB stores milliseconds; truncate so what we return equals what we read back.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def to_record(document: dict[str, Any] | None) -> dict[str, Any] | None:
    if document is None:
        return None
    record = dict(document)
    record["id"] = record.pop("_id")
    return record
