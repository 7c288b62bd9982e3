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
10k messages). So on it a page is read in steps, each of which reads little:

1. **the window**: ``list_key`` bounded to a time span back from the cursor, or from
   the newest key (storage/newest.py: the writers say where it is), sized from the
   density this query's last page showed (remembered here, per query: the cursor is
   only a key), or the collection's unfiltered pages, or its newest keys; or from a
   key the caller knows a page lies after (``holds_a_page``: an agent's newest
   conversations tell it; for an unfiltered page, the newest keys do). Where a
   compound index ``covers`` the query, it reads the window's matches only; else
   every document in the window, so a window that would hold many times a page is
   not tried, nor one reaching back past the ``horizon`` (messages expire), which
   holds everything.
2. if the window held less than a page, its rest comes from below it:
   - **the next window**, sized from the matches found so far, when they are enough
     to tell the filter's density and the lookup would read many (a common filter
     seen for the first time: its first window was sized from the unfiltered
     density); at most ``MAX_WINDOWS`` windows in all;
   - then, if the page is still short, **the lookup**: no window, led by the field
     the caller names in ``lead`` (a contact, a status), whose index selects that
     field's matches, or the caller's own ``lookup`` query (a search by words,
     through another collection's index). They are few, or the windows would have
     held more.

So a page holds ``limit`` items unless it is the last, and takes one query when the
window was sized well, which is almost always after a query's first page; two when
it was not, and rarely three.

A field with many allowed values (an agent's contacts) is checked here, not by the
server (``allowed``): see :data:`AllowedValues`.
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
DENSITY_SAMPLE = 3  # matches in a window that tell a filter's density well enough
MAX_WINDOWS = 2  # windows a page reads before it looks the rest of it up
_HINTS = 1024  # densities remembered, per collection and filter


T = TypeVar("T")
# A field and the values it may have, checked by the reader instead of the server: the
# embedded server checks `$in` against each value in turn and loses its compound
# index's window with it (measured at 50,000 messages: 100 contacts and a status in a
# window of 500 documents, 218 ms; the status and the window alone, 3 ms).
AllowedValues = tuple[str, frozenset[str]]
# The caller's lookup: the page's documents below a key (None: from the newest),
# newest first, at most the limit and one more.
Lookup = Callable[[str | None, int], Awaitable[list[Document]]]


@dataclass(frozen=True)
class ReadPlan:
    """How a page of one query is best read, as the repository that knows the query
    tells it (see the module's docstring for each): ``newer_than``/``older_than``
    bound the creation time; ``covered``: an index has the query's equalities and then
    ``list_key``; ``lead``: the field to look up when the window will not do;
    ``horizon``: no document is older
    (messages expire); ``holds_a_page``: a key from which on the query has a page at
    least; ``allowed``: a field's allowed values, checked here (see :data:`AllowedValues`);
    ``lookup``: the lookup to use instead of the lead's, on the embedded server;
    ``windows``: how many before the lookup (one, for a caller that spent a round
    trip already: a page is then at most three; none: only the lookup, one query)."""

    newer_than: datetime | None = None
    older_than: datetime | None = None
    covered: bool = True
    lead: str | None = None
    horizon: datetime | None = None
    holds_a_page: str | None = None
    allowed: AllowedValues | None = None
    lookup: Lookup | None = None
    windows: int = MAX_WINDOWS


ANY = ReadPlan()


@dataclass(frozen=True)
class _Read:
    """One page's read: its keys' bounds and what is known of the density there."""

    name: str  # the collection's
    upper: str | None  # keys below this (the cursor, or older_than)
    floor: str | None  # keys from this on (newer_than)
    oldest: int | None  # no document is older (ms): the horizon, or the floor
    anchor: int  # the window is measured back from here (ms)
    hint: str  # the query's density is remembered under this
    everything: float | None  # ms per document of the collection, if known
    holds_a_page: str | None
    unfiltered: bool
    limit: int


class PageReader:
    """Reads pages; ``windowed`` is set for servers that read past the limit."""

    def __init__(self) -> None:
        self.windowed = False
        self.newest = NewestKeys()  # tracked by Storage on the embedded server only
        # Each query's density where its last page was read (ms per match): the next
        # page's window is sized from it, and the cursor need not carry it.
        self._densities: OrderedDict[str, float] = OrderedDict()

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
        ``of``, read as ``plan`` says (:class:`ReadPlan`): ``limit`` of them unless
        it is the last page."""
        if not self.windowed:  # MongoDB reads matches newest first and stops at the limit
            if plan.allowed is not None:
                query = {**query, plan.allowed[0]: {"$in": sorted(plan.allowed[1])}}
            plan = replace(plan, allowed=None, lookup=None)
        read = self._bounds(collection.name, query, after, limit, plan)
        lower = self._window(read, plan)
        if lower is None or lower == read.floor:  # no window: the lookup alone
            documents = await self._rest(collection, query, read.upper, limit, read, plan)
        else:
            documents = await self._find(
                collection, query, None, read.upper, lower, limit, plan.allowed
            )
            if len(documents) <= limit:
                documents = await self._fill(collection, query, documents, lower, read, plan)
        if self.windowed:
            self._learn(read, query, documents, first=after is None)
        if len(documents) <= limit:
            return Page([of(d) for d in documents], None)
        return Page([of(d) for d in documents[:limit]], Position(documents[limit - 1][KEY]))

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
        unfiltered = not query and plan.allowed is None and plan.lookup is None
        holds_a_page = plan.holds_a_page
        if holds_a_page is None and unfiltered and newest.stable(name) and len(known) > limit:
            holds_a_page = known[-(limit + 1)]
        hint = f"{name}:{sorted(query.items())!r}:{floor}"
        if plan.allowed:
            hint += f":{plan.allowed[0]} in {len(plan.allowed[1])}"
        everything = self._densities.get(name) or self._spread(name)
        return _Read(
            name, upper, floor, oldest, anchor, hint, everything, holds_a_page, unfiltered, limit
        )

    def _window(self, read: _Read, plan: ReadPlan) -> str | None:
        """The first query's lower bound: a window's (see the module's docstring), or
        the floor when no window will do."""
        density = self._densities.get(read.hint) or read.everything
        holds_a_page, limit = read.holds_a_page, read.limit
        if not (self.windowed and plan.windows and (density != SPARSE or holds_a_page)):
            return read.floor
        if holds_a_page is not None:
            span = read.anchor - key_millis(holds_a_page)
        elif density:
            # What the page should need, if it is as dense as this query's last page,
            # twice over; four times for a query never seen (the unfiltered density).
            margin = 2 if read.hint in self._densities else 4
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

    async def _fill(
        self,
        collection: Collection,
        query: dict[str, Any],
        documents: list[Document],
        lower: str,
        read: _Read,
        plan: ReadPlan,
    ) -> list[Document]:
        """The rest of a page whose window held less than it: the next windows below,
        each sized from the matches found so far, while those tell the filter's
        density and the lookup would read many; then the lookup, below them."""
        limit = read.limit
        for _ in range(plan.windows - 1):
            span = self._next_span(read, len(documents), lower, plan)
            if span is None:
                break
            start = key_millis(lower)
            reached = read.oldest is not None and start - span <= read.oldest
            below = read.floor if reached else max(read.floor or "", key_floor(start - span))
            wanted = limit - len(documents)
            documents += await self._find(
                collection, query, None, lower, below, wanted, plan.allowed
            )
            if len(documents) > limit or below == read.floor:
                return documents
            lower = below or ""
        return documents + await self._rest(
            collection, query, lower, limit - len(documents), read, plan
        )

    def _next_span(self, read: _Read, found: int, lower: str, plan: ReadPlan) -> int | None:
        """How far back the next window reaches, sized from the ``found`` matches above
        ``lower``; None if they are too few to tell, or the lookup would read few (the
        matches they suggest are left above the horizon)."""
        start = key_millis(lower)
        per_match = (read.anchor - start) / max(found, 1)
        oldest = read.oldest
        many = oldest is not None and (start - oldest) / per_match > MAX_WINDOW_READ * read.limit
        if found < DENSITY_SAMPLE or not many:
            return None
        span = int(2 * per_match * (read.limit + 1 - found)) + 1000
        return span if self._affordable(span, read.everything, plan.covered, read.limit) else None

    async def _rest(
        self,
        collection: Collection,
        query: dict[str, Any],
        upper: str | None,
        limit: int,
        read: _Read,
        plan: ReadPlan,
    ) -> list[Document]:
        """The page's matches below ``upper`` with no window: the caller's lookup, or
        the lead field's index (on MongoDB, the query as it is)."""
        if plan.lookup is not None:
            return await plan.lookup(upper, limit)
        return await self._find(
            collection, query, plan.lead, upper, read.floor, limit, plan.allowed
        )

    def _learn(
        self, read: _Read, query: dict[str, Any], documents: list[Document], *, first: bool
    ) -> None:
        """What a page tells of the density of its query, and of the collection; a
        later page that found nothing says nothing of the query's newest matches."""
        found = _density(read.anchor, documents, read.limit)
        if found == SPARSE and not first:
            return
        self._remember(read.hint, found)
        if not query and read.floor is None:
            self._remember(read.name, found)
        if first and read.unfiltered and read.upper is None and read.floor is None:
            self.newest.learn(read.name, [d[KEY] for d in documents])  # maybe another's

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
        allowed: AllowedValues | None = None,
    ) -> list[Document]:
        bounds = {**({"$lt": upper} if upper else {}), **({"$gte": lower} if lower else {})}
        # ``allowed`` is checked here where the server's read is bounded anyway: by the
        # window, or by the lead's index. Else the server checks it, with the limit.
        here = allowed is not None and (lower is not None or lead in query)
        if allowed is not None and not here:
            query = {**query, allowed[0]: {"$in": sorted(allowed[1])}}
        # The embedded server looks the fields up in this order (dicts keep theirs on
        # the wire) when no compound index covers the query: the window first, or
        # the lead's own index.
        first = {lead: query[lead]} if lead in query else {}
        ordered = {**first, **({KEY: bounds} if bounds else {}), **query}
        cursor = collection.find(ordered).sort(KEY, DESCENDING)
        if allowed is None or not here:
            return await cursor.limit(limit + 1).to_list()
        field, values = allowed  # all in one reply (to 16 MB), not the server's 101 and more
        found = await cursor.batch_size(ONE_REPLY).to_list()
        return [d for d in found if d.get(field) in values][: limit + 1]

    def _remember(self, hint: str, density: float) -> None:
        self._densities[hint] = density
        self._densities.move_to_end(hint)
        while len(self._densities) > _HINTS:
            self._densities.popitem(last=False)


def _density(anchor: int, documents: list[Document], limit: int) -> float:
    """Milliseconds per item over what a page found; SPARSE if it found none."""
    found = documents[:limit]
    if not found:
        return SPARSE
    return max((anchor - key_millis(found[-1][KEY])) / len(found), 1.0)
