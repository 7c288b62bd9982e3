"""Deleting what is past its retention where the server does not (the embedded one),
in small batches, so that no request waits behind a sweep.

The embedded server deletes under one lock, and reads every document a range
selects before any limit applies (storage/pages.py), so one ``delete_many`` of
everything expired held a conversations list for 2.4 s at 30,000 messages, and
neither a limit nor a count finds the expired documents more cheaply than deleting
them. A sweep therefore deletes by windows of the field the documents expire by
(``list_key``, whose UUIDv7 holds the creation time, or ``created_at``), walking back
from the cutoff, each window sized from how many the one before held, with a pause
between windows for requests to go first.

Where the last sweep got to (its cutoff, the *mark*) is kept in ``meta``: a sweep
walks back to it and no further. Without one (a first start) it walks back until an
hour of windows came up empty and nothing is older, a check that is cheap exactly
when it succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from storage.records import KEY, Collection, Database, key_floor, millis, utcnow

log = logging.getLogger("gateway.storage")

TARGET = 100  # documents a window should hold: a delete of ~10-50 ms on a busy machine
FIRST_SPAN_MS = 1_000
# A window never spans more key time than this: the walk learns the density as it
# goes, and the first window past a quiet stretch can only hold this much of a burst
# (a minute at 2 messages a second: 120; the bench's 220 a second: 13,200).
MAX_SPAN_MS = 60_000
EMPTY_ENOUGH_MS = 3_600_000  # without a mark: this much empty, then a check below
PROGRESS_SECONDS = 10.0  # a long sweep says how far it got this often


@dataclass(frozen=True)
class Expiring:
    """A collection whose documents expire by ``field`` (``list_key`` or a date)."""

    collection: Collection
    field: str = KEY

    def bound(self, ms: int) -> Any:
        if self.field == KEY:
            return key_floor(ms)
        return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass
class Expiry:
    """Sweeps collections in windows; remembers each one's window size and marks."""

    meta: Collection
    pause: float = 0.02  # seconds between windows
    spans: dict[str, int] = field(default_factory=dict)  # learned window size, per collection
    pending: dict[str, float] = field(default_factory=dict)  # seconds of key time still to go
    largest: int = 0  # the most documents one delete removed (tests and bench read it)
    sleep: Callable[[float], Any] = asyncio.sleep

    @classmethod
    def of(cls, db: Database) -> Expiry:
        return cls(db["meta"])

    async def sweep(self, target: Expiring, retention_seconds: int) -> int:
        """Delete ``target``'s documents older than the retention; returns how many."""
        name = f"{target.collection.name}.{target.field}"
        cutoff = millis(utcnow()) - retention_seconds * 1000
        mark = await self._mark(name)
        if mark is not None and mark >= cutoff:
            return 0
        deleted, span, empty, hi = 0, self.spans.get(name, FIRST_SPAN_MS), 0, cutoff
        check_after, said = EMPTY_ENOUGH_MS, time.monotonic()
        while True:
            lo = hi - span if mark is None else max(hi - span, mark)
            query = {target.field: {"$gte": target.bound(lo), "$lt": target.bound(hi)}}
            count = (await target.collection.delete_many(query)).deleted_count
            deleted, hi, self.largest = deleted + count, lo, max(self.largest, count)
            self.pending[name] = (hi - mark) / 1000 if mark is not None else 0.0
            if mark is not None and hi <= mark:
                break
            empty = empty + span if count == 0 else 0
            span = _next_span(span, count)
            if mark is None and empty >= check_after:
                if not await _any_below(target, hi):
                    break
                empty, check_after = 0, check_after * 2  # older ones, past a gap: on
            if time.monotonic() - said >= PROGRESS_SECONDS:
                said = time.monotonic()
                log.info("expiry of %s: %d deleted, down to %s", name, deleted, _shown(hi))
            if count:  # an empty window cost the server nothing
                await self.sleep(self.pause)
        self.spans[name] = span
        self.pending[name] = 0.0
        await self.meta.update_one(
            {"_id": f"expired:{name}"}, {"$set": {"to_ms": cutoff}}, upsert=True
        )
        return deleted

    async def _mark(self, name: str) -> int | None:
        found = await self.meta.find_one({"_id": f"expired:{name}"})
        return None if found is None else int(found["to_ms"])


def _next_span(span: int, count: int) -> int:
    """The next window: twice as long after an empty one, else sized to hold about
    :data:`TARGET` at the density just seen (at most a quarter or twice this one)."""
    if count == 0:
        return min(span * 2, MAX_SPAN_MS)
    sized = span * TARGET // count
    return max(1, min(sized, span * 2, MAX_SPAN_MS), span // 4)


async def _any_below(target: Expiring, ms: int) -> bool:
    query = {target.field: {"$lt": target.bound(ms)}}
    return await target.collection.find_one(query, {"_id": 1}) is not None


def _shown(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")
