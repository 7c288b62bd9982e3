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
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from pymongo import DESCENDING

from storage.lists import Page, Position
from storage.newest import NewestKeys
from storage.records import KEY as KEY  # the listed collections import it from here
from storage.records import Collection, Document, key_floor, key_millis, millis, utcnow

FIRST_WINDOW_MS = 3_600_000
SPARSE = float("inf")  # a first page that found less than a page: no window next time
MAX_WINDOW_READ = 40  # pages' worth of documents an uncovered window may read
ONE_REPLY = 100_000  # documents a read checked here may bring in its first reply
DENSITY_SAMPLE = 3  # matches in a first window that tell a filter's density well enough
_HINTS = 1024  # first-page densities remembered, per collection and filter


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
class ReadPlan:
    """How a page of one query is best read, as the repository that knows the query
    tells it (see the module's docstring for each): ``newer_than``/``older_than``
    bound the creation time; ``covered``: an index has the query's equalities and then
    ``list_key``; ``lead``: the field to look up when the window will not do;
    ``window=False``: only that lookup, one query; ``horizon``: no document is older
    (messages expire); ``holds_a_page``: a key from which on the query has a page at
    least; ``only``: a field's allowed values, checked here (see :data:`Only`);
    ``lookup``: the lookup to use instead of the lead's, on the embedded server;
    ``second=False``: one query, for a caller that spent a round trip already."""

    newer_than: datetime | None = None
    older_than: datetime | None = None
    covered: bool = True
    lead: str | None = None
    window: bool = True
    horizon: datetime | None = None
    holds_a_page: str | None = None
    only: Only | None = None
    lookup: Lookup | None = None
    second: bool = True


ANY = ReadPlan()


@dataclass(frozen=True)
class _Read:
    """One page's read: its keys' bounds and what is known of the density there."""

    name: str  # the collection's
    upper: str | None  # keys below this (the cursor, or older_than)
    floor: str | None  # keys from this on (newer_than)
    oldest: int | None  # no document is older (ms): the horizon, or the floor
    anchor: int  # the window is measured back from here (ms)
    hint: str  # the query's first-page density is remembered under this
    everything: float | None  # ms per document of the collection, if known
    holds_a_page: str | None
    unfiltered: bool
    limit: int


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
        plan: ReadPlan = ANY,
    ) -> Page[T]:
        """One page of ``query`` after ``after``, each document made a record by
        ``of``, read as ``plan`` says (:class:`ReadPlan`)."""
        if not self.windowed:  # MongoDB reads matches newest first and stops at the limit
            if plan.only is not None:
                query = {**query, plan.only[0]: {"$in": sorted(plan.only[1])}}
            plan = replace(plan, only=None, lookup=None)
        read = self._bounds(collection.name, query, after, limit, plan)
        lower = self._window(read, after, limit, plan)
        only, lookup, floor, upper = plan.only, plan.lookup, read.floor, read.upper
        if lower != floor:
            documents = await self._find(collection, query, None, upper, lower, limit, only)
        elif lookup is not None:
            documents = await lookup(upper, limit)
        else:
            documents = await self._find(collection, query, plan.lead, upper, lower, limit, only)
        if plan.second and len(documents) <= limit and lower is not None and lower != floor:
            documents, lower = await self._second(collection, query, documents, read, lower, plan)
        if self.windowed and after is None:
            self._learn(read, query, documents, limit)
        return _page([of(d) for d in documents[:limit]], documents, read, lower, limit)

    def _bounds(
        self,
        name: str,
        query: dict[str, Any],
        after: Position | None,
        limit: int,
        plan: ReadPlan,
    ) -> _Read:
        """Where a page is read from: its keys' bounds, and what is known of how
        densely the collection, and this query, hold documents there."""
        upper = after.key if after else None
        if plan.older_than is not None:
            bound = key_floor(millis(plan.older_than, ceil=True))  # created strictly before
            upper = min(upper, bound) if upper else bound
        floor = key_floor(millis(plan.newer_than) + 1) if plan.newer_than is not None else None
        # No document is older than the horizon, and none older than the floor counts.
        oldest = None
        if plan.horizon:
            oldest = max(millis(plan.horizon), key_millis(floor) if floor else 0)
        anchor = key_millis(upper) if upper else millis(utcnow())
        newest = self.newest
        known = [k for k in newest.of(name) if upper is None or k < upper] if not after else []
        if known:  # measured from now, a window misses a collection quiet for longer
            anchor = min(anchor, key_millis(known[-1]))
        unfiltered = not query and plan.only is None and plan.lookup is None
        holds_a_page = plan.holds_a_page
        if holds_a_page is None and unfiltered and newest.stable(name) and len(known) > limit:
            holds_a_page = known[-(limit + 1)]
        hint = f"{name}:{sorted(query.items())!r}:{floor}"
        if plan.only:
            hint += f":{plan.only[0]} in {len(plan.only[1])}"
        everything = self._first_pages.get(name) or self._spread(name)
        return _Read(
            name, upper, floor, oldest, anchor, hint, everything, holds_a_page, unfiltered, limit
        )

    def _window(
        self, read: _Read, after: Position | None, limit: int, plan: ReadPlan
    ) -> str | None:
        """The first query's lower bound: a window's (see the module's docstring), or
        the floor when no window will do."""
        density = (
            after.ms_per_item if after else self._first_pages.get(read.hint) or read.everything
        )
        holds_a_page = read.holds_a_page
        if not (self.windowed and plan.window and (density != SPARSE or holds_a_page)):
            return read.floor
        if holds_a_page is not None:
            span = read.anchor - key_millis(holds_a_page)
        elif density:
            # What the page should need, if it is as dense as the last one, twice
            # over; four times for a filter never seen (the unfiltered density).
            margin = 2 if after or read.hint in self._first_pages else 4
            span = int(margin * density * (limit + 1)) + 1000
        else:
            span = FIRST_WINDOW_MS
        # A window back past the horizon holds everything: the lookup reads less.
        reach = read.oldest if read.oldest is not None else 0
        if read.anchor - span > reach and self._affordable(
            span, read.everything, plan.covered, limit
        ):
            return max(read.floor or "", key_floor(read.anchor - span))
        return read.floor

    def _learn(
        self, read: _Read, query: dict[str, Any], documents: list[Document], limit: int
    ) -> None:
        """What a first page tells of the density of its query, and of the collection."""
        found = _density(read.anchor, documents, limit)
        self._remember(read.hint, found)
        if not query and read.floor is None:
            self._remember(read.name, found)
        if read.unfiltered and read.upper is None and read.floor is None:
            self.newest.learn(read.name, [d[KEY] for d in documents])  # maybe another's

    async def _second(
        self,
        collection: Collection,
        query: dict[str, Any],
        documents: list[Document],
        read: _Read,
        lower: str,
        plan: ReadPlan,
    ) -> tuple[list[Document], str | None]:
        limit = read.limit
        """The page's second query, when the window held less than a page: the next
        window below it, sized from the first's matches, if they tell the filter's
        density and the lookup would read many (the matches left above the horizon);
        else the lookup. Also the lower bound it read to."""
        anchor, upper, floor, oldest = read.anchor, read.upper, read.floor, read.oldest
        found = len(documents)
        start = key_millis(lower)
        per_match = (anchor - start) / max(found, 1)
        many = oldest is not None and (start - oldest) / per_match > MAX_WINDOW_READ * limit
        if found >= DENSITY_SAMPLE and many:
            span = int(2 * per_match * (limit + 1 - found)) + 1000
            if self._affordable(span, read.everything, plan.covered, limit):
                reached = oldest is not None and start - span <= oldest
                below = floor if reached else max(floor or "", key_floor(start - span))
                rest = await self._find(
                    collection, query, None, lower, below, limit - found, plan.only
                )
                return documents + rest, below
        if plan.lookup is not None:
            return await plan.lookup(upper, limit), floor
        return await self._find(collection, query, plan.lead, upper, floor, limit, plan.only), floor

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


def _page(
    items: list[T], documents: list[Document], read: _Read, lower: str | None, limit: int
) -> Page[T]:
    """The page, and where the next begins: after its last item, or below a window
    that held less than the rest of it."""
    if len(documents) > limit:
        last = documents[limit - 1][KEY]
        return Page(items, Position(last, (read.anchor - key_millis(last)) / limit))
    if lower is not None and lower != read.floor:
        density = (read.anchor - key_millis(lower)) / max(1, len(items))
        return Page(items, Position(lower, density))
    return Page(items, None)


def _density(anchor: int, documents: list[Document], limit: int) -> float:
    """Milliseconds per item over what a first page found; SPARSE if it found none."""
    found = documents[:limit]
    if not found:
        return SPARSE
    return max((anchor - key_millis(found[-1][KEY])) / len(found), 1.0)
