"""The event hub's limits on streams, with an in-memory event log: a client too far
behind is ended with a reason to resume, a sign-in's newest stream replaces its
oldest, an agent past its cap is refused, and a sign-out ends its streams at once."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import EventsConfig
from gateway.errors import TooManyRequests
from gateway.events import BEHIND, REPLACED, SIGNED_OUT, EventHub


class MemoryLog:
    """The two calls the hub makes of the events repository, over a list."""

    def __init__(self) -> None:
        self.entries: list[Any] = []
        self.fetched: list[str] = []

    async def after(self, cursor: str, limit: int, before: str) -> list[Any]:
        return [e for e in self.entries if cursor < e.id <= before][:limit]

    async def keys_after(self, cursor: str, limit: int, before: str) -> list[str]:
        return [e.id for e in await self.after(cursor, limit, before)]

    async def get_many(self, ids: list[str]) -> list[Any]:
        self.fetched += ids
        return [e for e in self.entries if e.id in ids]


class Entry:
    def __init__(self, n: int) -> None:
        self.id = f"0{n:07d}"


def _hub(log: MemoryLog, **limits: int) -> EventHub:
    hub = EventHub(log, settle_ms=0, poll_seconds=1, limits=EventsConfig(**limits))  # type: ignore[arg-type]
    hub.cursor = "0"
    return hub


async def test_a_client_too_far_behind_is_ended_and_its_queue_stays_bounded() -> None:
    log = MemoryLog()
    hub = _hub(log, stream_queue_events=10)
    slow = hub.subscribe(lambda event: True, "ana", "s1")
    log.entries = [Entry(n) for n in range(1, 1001)]
    await hub.read()
    assert slow.queue.qsize() <= 10
    assert slow.ended == BEHIND
    log.entries.append(Entry(1001))
    await hub.read()  # it no longer gets anything
    assert slow.queue.qsize() <= 10


async def test_a_sign_ins_newest_stream_replaces_its_oldest() -> None:
    hub = _hub(MemoryLog(), max_streams_per_sign_in=2, max_streams_per_agent=5)
    first, second = (hub.subscribe(lambda e: True, "ana", "s1") for _ in range(2))
    third = hub.subscribe(lambda e: True, "ana", "s1")
    assert (first.ended, second.ended, third.ended) == (REPLACED, None, None)


async def test_an_agent_past_the_cap_is_refused() -> None:
    hub = _hub(MemoryLog(), max_streams_per_sign_in=2, max_streams_per_agent=3)
    for sign_in in ("s1", "s1", "s2"):
        hub.subscribe(lambda e: True, "ana", sign_in)
    with pytest.raises(TooManyRequests):
        hub.subscribe(lambda e: True, "ana", "s3")
    hub.subscribe(lambda e: True, "bruno", "s4")  # another agent's are their own


async def test_a_sign_out_ends_its_streams_at_once_and_no_other() -> None:
    hub = _hub(MemoryLog())
    mine, other = (
        hub.subscribe(lambda e: True, "ana", "s1"),
        hub.subscribe(lambda e: True, "ana", "s2"),
    )
    hub.end_sign_in("s1")
    assert (mine.ended, other.ended) == (SIGNED_OUT, None)
    assert mine.ending.is_set()


async def test_the_sole_writer_hands_out_what_it_wrote_without_reading_it_back() -> None:
    log = MemoryLog()
    hub = _hub(log)
    stream = hub.subscribe(lambda event: True, "ana", "s1")
    reads = []
    real_after = log.after

    async def counted(cursor: str, limit: int, before: str) -> list[Any]:
        reads.append(cursor)
        return await real_after(cursor, limit, before)

    log.after = counted  # type: ignore[method-assign]
    hub.written([Entry(1), Entry(2)])
    hub.written([Entry(2), Entry(3)])  # one already handed out is not handed out again
    assert [stream.queue.get_nowait().id for _ in range(3)] == ["00000001", "00000002", "00000003"]
    assert stream.queue.empty()
    assert reads == []


async def test_a_shared_log_fetches_only_what_other_gateways_wrote_in_id_order() -> None:
    log = MemoryLog()
    hub = EventHub(log, settle_ms=1000, poll_seconds=1)  # type: ignore[arg-type]
    hub.cursor = "0"
    stream = hub.subscribe(lambda event: True, "ana", "s1")
    mine, theirs = [Entry(1), Entry(3)], [Entry(2)]
    log.entries = sorted(mine + theirs, key=lambda e: e.id)
    hub.written(mine)
    assert stream.queue.empty()  # not before the settle period: theirs may come between
    hub.horizon = lambda: "99999999"  # type: ignore[method-assign]
    await hub.read()
    assert [stream.queue.get_nowait().id for _ in range(3)] == ["00000001", "00000002", "00000003"]
    assert log.fetched == ["00000002"]  # only the other gateway's entry was read whole
