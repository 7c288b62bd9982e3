"""Keyset pagination over time-ordered keys (UUIDv7), newest first.

A page is ``find(filter, key < cursor).sort(key desc).limit(n + 1)``: the same cost
at any depth, and nothing repeats or goes missing when documents arrive meanwhile.

MongoDB stops reading at the limit. The embedded server does not: it reads every
document the index range selects before it applies the limit. On it, a query is
also bounded to a time window just wide enough for one page: the window the
previous page needed (carried in the cursor) or a first guess. If that window
holds less than a page, one wider window is tried, then no window at all: a full
page costs one query, and a page after a quiet spell, or the last page, at most
three.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from storage.records import key_floor, key_millis, millis, to_record, utcnow

FIRST_WINDOW_MS = 60_000
WIDEN = 32


@dataclass(frozen=True)
class Position:
    """Where a page ended, and how far back in time the next page is likely to reach."""

    key: str
    window_ms: int = FIRST_WINDOW_MS


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next: Position | None


class PageReader:
    """Reads pages; ``windowed`` is set for servers that read past the limit."""

    def __init__(self) -> None:
        self.windowed = False

    async def fetch(
        self,
        collection: AsyncCollection,
        query: dict[str, Any],
        after: Position | None,
        limit: int,
        *,
        key: str = "_id",
        newer_than: datetime | None = None,
        older_than: datetime | None = None,
    ) -> Page:
        """One page of ``query`` after ``after``, bounded by creation time if asked.

        ``key`` must be a UUIDv7 field with an index that ``query``'s equality
        fields lead.
        """
        upper = after.key if after else None
        if older_than is not None:
            bound = key_floor(millis(older_than, ceil=True))  # created strictly before
            upper = min(upper, bound) if upper else bound
        floor = key_floor(millis(newer_than) + 1) if newer_than is not None else None
        anchor = key_millis(upper) if upper else millis(utcnow())
        window = after.window_ms if after else FIRST_WINDOW_MS
        windows = [window, window * WIDEN, None] if self.windowed else [None]
        for span in windows:
            lower = floor if span is None else max(floor or "", key_floor(anchor - span))
            bounds = {**({"$lt": upper} if upper else {}), **({"$gte": lower} if lower else {})}
            documents = (
                await collection.find({**query, key: bounds} if bounds else query)
                .sort(key, DESCENDING)
                .limit(limit + 1)
                .to_list()
            )
            if len(documents) > limit or lower == floor:
                break
        if len(documents) <= limit:
            return Page([to_record(d) for d in documents], None)  # type: ignore[misc]
        last = documents[limit - 1][key]
        # The next page will likely span about as much time as this one did.
        needed = max(1_000, 2 * (anchor - key_millis(last)))
        items = [to_record(d) for d in documents[:limit]]
        return Page(items, Position(last, needed))  # type: ignore[arg-type]
