"""Keyset pagination over time-ordered keys (UUIDv7), newest first.

A page is ``find(filter, list_key < cursor).sort(list_key desc).limit(n + 1)``: the
same cost at any depth, and nothing repeats or goes missing when documents arrive
meanwhile. Every listed collection has a ``list_key`` with an index (alone, and
after each equality filter the API offers).

MongoDB stops reading at the limit. The embedded server does not: it reads every
document an index range selects before it applies the limit, and it does not use
the ``_id`` index for ranges at all (measured: 245 ms for the first page of 10k
messages). On it, each query is also bounded to a time window sized from the
density the previous page showed (carried in the cursor), or from what the same
first page needed last time, or from a first guess. A window that holds less than
a page is widened eightfold, at most four times, and then dropped. A full page
usually costs one query there too; the last page, or one after a quiet spell, up
to six.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pymongo import DESCENDING

from storage.records import Collection, Document, key_floor, key_millis, millis, utcnow

KEY = "list_key"
FIRST_WINDOW_MS = 3_600_000
WIDEN = 8
MAX_WIDENINGS = 4
_HINTS = 1024  # first-page densities remembered, per collection and filter


@dataclass(frozen=True)
class Position:
    """Where a page ended, and how many milliseconds apart its items were on average."""

    key: str
    ms_per_item: float


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next: Position | None


class PageReader:
    """Reads pages; ``windowed`` is set for servers that read past the limit."""

    def __init__(self) -> None:
        self.windowed = False
        self._first_pages: OrderedDict[str, float] = OrderedDict()

    async def fetch(
        self,
        collection: Collection,
        of: Callable[[Document], T],
        query: dict[str, Any],
        after: Position | None,
        limit: int,
        *,
        newer_than: datetime | None = None,
        older_than: datetime | None = None,
    ) -> Page[T]:
        """One page of ``query`` after ``after``, optionally bounded by creation time,
        each document made a record by ``of``."""
        upper = after.key if after else None
        if older_than is not None:
            bound = key_floor(millis(older_than, ceil=True))  # created strictly before
            upper = min(upper, bound) if upper else bound
        floor = key_floor(millis(newer_than) + 1) if newer_than is not None else None
        anchor = key_millis(upper) if upper else millis(utcnow())
        hint = f"{collection.name}:{sorted(query.items())!r}:{floor}"
        density = after.ms_per_item if after else self._first_pages.get(hint)
        window: int | None = None
        if self.windowed:
            # Twice what the page should need, if it is as dense as the last one.
            window = int(2 * density * (limit + 1)) + 1000 if density else FIRST_WINDOW_MS
        widenings = 0
        while True:
            lower = floor
            if window is not None and window < anchor:
                lower = max(floor or "", key_floor(anchor - window))
            bounds = {**({"$lt": upper} if upper else {}), **({"$gte": lower} if lower else {})}
            documents = (
                await collection.find({**query, KEY: bounds} if bounds else query)
                .sort(KEY, DESCENDING)
                .limit(limit + 1)
                .to_list()
            )
            if len(documents) > limit or lower == floor:
                break
            widenings += 1
            window = window * WIDEN if window and widenings <= MAX_WIDENINGS else None
        items = [of(d) for d in documents[:limit]]
        if len(documents) <= limit:
            return Page(items, None)
        last = documents[limit - 1][KEY]
        density = (anchor - key_millis(last)) / limit
        if after is None and self.windowed:
            self._remember(hint, density)
        return Page(items, Position(last, density))

    def _remember(self, hint: str, density: float) -> None:
        self._first_pages[hint] = density
        self._first_pages.move_to_end(hint)
        while len(self._first_pages) > _HINTS:
            self._first_pages.popitem(last=False)
