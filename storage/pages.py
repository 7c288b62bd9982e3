"""Keyset pagination over time-ordered keys (UUIDv7), newest first.

A page is ``find(filter, list_key < cursor).sort(list_key desc).limit(n + 1)``: the
same cost at any depth, and nothing repeats or goes missing when documents arrive
meanwhile. Every listed collection has a ``list_key`` with an index (alone, and
after each equality filter the API offers).

MongoDB stops reading at the limit. The embedded server does not: it reads every
document an index lookup selects before it applies the limit, it picks the index by
the query's shape (a compound index whose equalities and then ``list_key`` match
the query's, or else the first field, in order, that leads an index), and it does
not use the ``_id`` index for ranges at all (measured: 245 ms for the first page of
10k messages). So on it a page is at most two queries, each of which reads little:

1. **the window**: ``list_key`` bounded to a time span back from the cursor, or from
   the newest key (storage/newest.py: the writers say where it is), sized from the
   density the previous page showed (carried in the cursor), or that the same first
   page showed last time, or the collection's unfiltered first page, or its newest
   keys; or from a key the caller knows a page lies after (``holds_a_page``: an
   agent's newest conversations tell it; for an unfiltered page, the newest keys
   do). Where a compound index ``covers`` the query, it reads the window's matches
   only; else every document in the window, so a window that would hold many times
   a page is not tried, nor one reaching back past the ``horizon`` (messages
   expire), which holds everything.
2. if the window held less than a page, either
   - **the next window** below it, sized from the matches the first held, when they
     were enough to tell the filter's density and the lookup would read many (a
     common filter seen for the first time: its first window was sized from the
     unfiltered density). Should that too hold less than the rest of the page, the
     page is short and its ``next`` goes on below that window: a page never needs a
     third query;
   - or **the lookup**: no window, led by the field the caller names in ``lead`` (a
     contact, a status), whose index selects that field's matches, or the caller's
     own ``lookup`` query (a search by words, through another collection's index).
     They are few, or the window would have held some.

A field with many allowed values (an agent's contacts) is checked here, not by the
server (``only``): see :data:`Only`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pymongo import DESCENDING

from storage.newest import NewestKeys
from storage.records import KEY as KEY  # the listed collections import it from here
from storage.records import Collection, Document, key_floor, key_millis, millis, utcnow

FIRST_WINDOW_MS = 3_600_000
SPARSE = float("inf")  # a first page that found less than a page: no window next time
MAX_WINDOW_READ = 40  # pages' worth of documents an uncovered window may read
ONE_REPLY = 100_000  # documents a read checked here may bring in its first reply
DENSITY_SAMPLE = 3  # matches in a first window that tell a filter's density well enough
_HINTS = 1024  # first-page densities remembered, per collection and filter


@dataclass(frozen=True)
class Position:
    """Where a page ended, and how many milliseconds apart its items were on average."""

    key: str
    ms_per_item: float


T = TypeVar("T")
# A field and the values it may have, checked by the reader instead of the server: the
# embedded server checks `$in` against each value in turn and loses its compound
# index's window with it (measured at 50,000 messages: 100 contacts and a status in a
# window of 500 documents, 218 ms; the status and the window alone, 3 ms).
Only = tuple[str, frozenset[str]]
# The caller's lookup: the page's documents below a key (None: from the newest),
# newest first, at most the limit and one more.
Lookup = Callable[[str | None, int], Awaitable[list[Document]]]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next: Position | None


class PageReader:
    """Reads pages; ``windowed`` is set for servers that read past the limit."""

    def __init__(self) -> None:
        self.windowed = False
        self.newest = NewestKeys()  # tracked by Storage on the embedded server only
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
        covered: bool = True,
        lead: str | None = None,
        window: bool = True,
        horizon: datetime | None = None,
        holds_a_page: str | None = None,
        only: Only | None = None,
        lookup: Lookup | None = None,
        second: bool = True,
    ) -> Page[T]:
        """One page of ``query`` after ``after``, optionally bounded by creation time,
        each document made a record by ``of``. ``covered``: an index has the query's
        equalities and then ``list_key``; ``lead``: the field to look up when the
        window will not do (see the module's docstring); ``window=False``: only that
        lookup, one query; ``horizon``: no document is older (messages expire);
        ``holds_a_page``: a key from which on the query has a page at least (a first
        page's window then starts there); ``only``: a field's allowed values, checked
        here rather than by the server (see :data:`Only`); ``lookup``: the lookup to
        use instead of the lead's, on the embedded server (see :data:`Lookup`);
        ``second=False``: one query, for a caller that spent a round trip already (a
        window that holds less than a page then ends a short page, whose ``next``
        goes on below it)."""
        if only is not None and not self.windowed:  # MongoDB stops at the limit anyway
            query, only = {**query, only[0]: {"$in": sorted(only[1])}}, None
        upper = after.key if after else None
        if older_than is not None:
            bound = key_floor(millis(older_than, ceil=True))  # created strictly before
            upper = min(upper, bound) if upper else bound
        floor = key_floor(millis(newer_than) + 1) if newer_than is not None else None
        # No document is older than the horizon, and none older than the floor counts.
        oldest = max(millis(horizon), key_millis(floor) if floor else 0) if horizon else None
        anchor = key_millis(upper) if upper else millis(utcnow())
        name, newest = collection.name, self.newest
        known = [k for k in newest.of(name) if upper is None or k < upper] if not after else []
        if known:  # measured from now, a window misses a collection quiet for longer
            anchor = min(anchor, key_millis(known[-1]))
        unfiltered = not query and only is None and lookup is None
        if holds_a_page is None and unfiltered and newest.stable(name) and len(known) > limit:
            holds_a_page = known[-(limit + 1)]
        hint = f"{name}:{sorted(query.items())!r}:{floor}"
        if only:
            hint += f":{only[0]} in {len(only[1])}"
        everything = self._first_pages.get(name) or self._spread(name)
        density = after.ms_per_item if after else self._first_pages.get(hint) or everything
        lower = floor
        if self.windowed and window and (density != SPARSE or holds_a_page):
            if holds_a_page is not None:
                span = anchor - key_millis(holds_a_page)
            elif density:
                # What the page should need, if it is as dense as the last one, twice
                # over; four times for a filter never seen (the unfiltered density).
                margin = 2 if after or hint in self._first_pages else 4
                span = int(margin * density * (limit + 1)) + 1000
            else:
                span = FIRST_WINDOW_MS
            # A window back past the horizon holds everything: the lookup reads less.
            reach = oldest if oldest is not None else 0
            if anchor - span > reach and self._affordable(span, everything, covered, limit):
                lower = max(floor or "", key_floor(anchor - span))
        if lookup is not None and not self.windowed:
            lookup = None  # MongoDB reads its matches newest first and stops at the limit
        if lower != floor:
            documents = await self._find(collection, query, None, upper, lower, limit, only)
        elif lookup is not None:
            documents = await lookup(upper, limit)
        else:
            documents = await self._find(collection, query, lead, upper, lower, limit, only)
        if second and len(documents) <= limit and lower is not None and lower != floor:
            documents, lower = await self._second(
                collection, query, documents, (anchor, upper, lower, floor, oldest),
                lead, limit, everything, covered, only, lookup,
            )  # fmt: skip
        items = [of(d) for d in documents[:limit]]
        if self.windowed and after is None:
            found = _density(anchor, documents, limit)
            self._remember(hint, found)
            if not query and floor is None:
                self._remember(name, found)
            if unfiltered and upper is None and floor is None:  # the newest, maybe another's
                newest.learn(name, [d[KEY] for d in documents])
        if len(documents) > limit:
            last = documents[limit - 1][KEY]
            return Page(items, Position(last, (anchor - key_millis(last)) / limit))
        if lower is not None and lower != floor:  # the last window held less than the rest
            return Page(items, Position(lower, (anchor - key_millis(lower)) / max(1, len(items))))
        return Page(items, None)

    async def _second(
        self,
        collection: Collection,
        query: dict[str, Any],
        documents: list[Document],
        bounds: tuple[int, str | None, str, str | None, int | None],
        lead: str | None,
        limit: int,
        everything: float | None,
        covered: bool,
        only: Only | None,
        lookup: Lookup | None,
    ) -> tuple[list[Document], str | None]:
        """The page's second query, when the window held less than a page: the next
        window below it, sized from the first's matches, if they tell the filter's
        density and the lookup would read many (the matches left above the horizon);
        else the lookup. Also the lower bound it read to."""
        anchor, upper, lower, floor, oldest = bounds
        found = len(documents)
        start = key_millis(lower)
        per_match = (anchor - start) / max(found, 1)
        many = oldest is not None and (start - oldest) / per_match > MAX_WINDOW_READ * limit
        if found >= DENSITY_SAMPLE and many:
            span = int(2 * per_match * (limit + 1 - found)) + 1000
            if self._affordable(span, everything, covered, limit):
                reached = oldest is not None and start - span <= oldest
                below = floor if reached else max(floor or "", key_floor(start - span))
                rest = await self._find(collection, query, None, lower, below, limit - found, only)
                return documents + rest, below
        if lookup is not None:
            return await lookup(upper, limit), floor
        return await self._find(collection, query, lead, upper, floor, limit, only), floor

    def _spread(self, name: str) -> float | None:
        """Milliseconds per document among the newest known, until a page tells."""
        keys = self.newest.of(name)
        if not self.newest.stable(name) or len(keys) < 2:
            return None
        return max((key_millis(keys[-1]) - key_millis(keys[0])) / (len(keys) - 1), 1.0)

    @staticmethod
    def _affordable(span: int, everything: float | None, covered: bool, limit: int) -> bool:
        """A window the embedded server can read: a covered query reads its matches in
        it only; any other, every document in it (an hour's, if no page told how many)."""
        if covered:
            return True
        if not everything:
            return span <= FIRST_WINDOW_MS
        return span / everything <= MAX_WINDOW_READ * limit

    @staticmethod
    async def _find(
        collection: Collection,
        query: dict[str, Any],
        lead: str | None,
        upper: str | None,
        lower: str | None,
        limit: int,
        only: Only | None = None,
    ) -> list[Document]:
        bounds = {**({"$lt": upper} if upper else {}), **({"$gte": lower} if lower else {})}
        # ``only`` is checked here where the server's read is bounded anyway: by the
        # window, or by the lead's index. Else the server checks it, with the limit.
        here = only is not None and (lower is not None or lead in query)
        if only is not None and not here:
            query = {**query, only[0]: {"$in": sorted(only[1])}}
        # The embedded server looks the fields up in this order (dicts keep theirs on
        # the wire) when no compound index covers the query: the window first, or
        # the lead's own index.
        first = {lead: query[lead]} if lead in query else {}
        ordered = {**first, **({KEY: bounds} if bounds else {}), **query}
        cursor = collection.find(ordered).sort(KEY, DESCENDING)
        if only is None or not here:
            return await cursor.limit(limit + 1).to_list()
        field, values = only  # all in one reply (to 16 MB), not the server's 101 and more
        found = await cursor.batch_size(ONE_REPLY).to_list()
        return [d for d in found if d.get(field) in values][: limit + 1]

    def _remember(self, hint: str, density: float) -> None:
        self._first_pages[hint] = density
        self._first_pages.move_to_end(hint)
        while len(self._first_pages) > _HINTS:
            self._first_pages.popitem(last=False)


def _density(anchor: int, documents: list[Document], limit: int) -> float:
    """Milliseconds per item over what a first page found; SPARSE if it found none."""
    found = documents[:limit]
    if not found:
        return SPARSE
    return max((anchor - key_millis(found[-1][KEY])) / len(found), 1.0)
