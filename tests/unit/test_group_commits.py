"""The writers that group what arrives while one write is under way: the helper they
share (gateway/group_commit.py), the event log (ids in write order, one insert for
many appends, the hub woken) and the outcome writer (at most OUTCOMES_PER_WRITE a
write, retried while the database is away)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from pymongo.errors import AutoReconnect

from gateway.bus import Bus, StatusesChanged
from gateway.events import EventLog
from gateway.group_commit import GroupCommit
from gateway.outbound import OUTCOMES_PER_WRITE, OutcomeWriter
from storage.outbox import Outcome
from tests.unit.fakes import until


class GatedWrites:
    """A write that records its batches and waits on ``gate``; ``fail`` fails the next."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.fail = False

    async def __call__(self, batch: list[int]) -> None:
        self.batches.append(batch)
        await self.gate.wait()
        if self.fail:
            self.fail = False
            raise RuntimeError("this write failed")


async def test_what_comes_during_a_write_goes_in_the_next_in_order_at_most_most() -> None:
    write = GatedWrites()
    commits = GroupCommit(write, "test", most=3)
    commits.add([1])
    await until(lambda: write.batches == [[1]])
    commits.add([2, 3])
    commits.add([4, 5])
    write.gate.set()
    await until(lambda: len(write.batches) == 3)
    await commits.drain(5)
    assert write.batches == [[1], [2, 3, 4], [5]]


async def test_a_failed_write_does_not_strand_what_waits_behind_it() -> None:
    write = GatedWrites()
    commits = GroupCommit(write, "test")
    write.fail = True
    commits.add([1])
    await until(lambda: write.batches == [[1]])
    commits.add([2])
    write.gate.set()
    await until(lambda: write.batches == [[1], [2]])


async def test_what_waits_can_be_taken_out_to_answer_at_once() -> None:
    write = GatedWrites()
    commits = GroupCommit(write, "test")
    commits.add([1])
    await until(lambda: write.batches == [[1]])
    commits.add([2, 3])
    assert commits.take_waiting() == [2, 3]
    write.gate.set()
    await commits.drain(5)
    assert write.batches == [[1]]


class GatedEvents:
    """An events repository whose appends wait on ``gate``; ``fail`` fails the next."""

    def __init__(self) -> None:
        self.writes: list[list[Any]] = []
        self.gate = asyncio.Event()
        self.fail: Exception | None = None

    async def append(self, entries: list[Any]) -> list[Any]:
        self.writes.append(list(entries))
        await self.gate.wait()
        if self.fail is not None:
            failure, self.fail = self.fail, None
            raise failure
        return [SimpleNamespace(id=f"e{len(self.writes)}-{n}") for n in range(len(entries))]


class Hub:
    def __init__(self) -> None:
        self.nudged: list[str] = []

    def written(self, events: list[Any]) -> None:
        self.nudged.append(events[-1].id)


async def test_appends_during_a_write_go_in_one_insert_and_the_hub_hears_once() -> None:
    events, hub = GatedEvents(), Hub()
    log = EventLog(events, hub)  # type: ignore[arg-type]
    first = asyncio.ensure_future(log.append([("a",)]))  # type: ignore[list-item]
    await until(lambda: len(events.writes) == 1)
    rest = [asyncio.ensure_future(log.append([(n,)])) for n in "bcd"]  # type: ignore[list-item]
    await asyncio.sleep(0)
    events.gate.set()
    await asyncio.gather(first, *rest)
    assert [[e[0] for e in w] for w in events.writes] == [["a"], ["b", "c", "d"]]
    assert hub.nudged == ["e1-0", "e2-2"]  # the newest of each write


async def test_a_failed_event_write_fails_its_appends_and_not_the_next() -> None:
    events, hub = GatedEvents(), Hub()
    log = EventLog(events, hub)  # type: ignore[arg-type]
    events.fail = AutoReconnect("away")
    events.gate.set()
    failed = asyncio.ensure_future(log.append([("a",)]))  # type: ignore[list-item]
    results = await asyncio.gather(failed, return_exceptions=True)
    assert isinstance(results[0], AutoReconnect)
    await log.append([("b",)])  # type: ignore[list-item]
    assert hub.nudged == ["e2-0"]


class Outbox:
    def __init__(self, away_for: int = 0) -> None:
        self.writes: list[list[str]] = []
        self.away_for = away_for  # writes that fail as if the database were away
        self.gate = asyncio.Event()
        self.gate.set()

    async def finish(self, outcomes: list[Outcome]) -> None:
        await self.gate.wait()
        if self.away_for:
            self.away_for -= 1
            raise AutoReconnect("away")
        self.writes.append([o.message_id for o in outcomes])


class Messages:
    async def get_many(self, ids: list[str]) -> list[str]:
        return ids


def outcome(n: int, status: str = "sent") -> Outcome:
    return Outcome(f"m{n:03d}", "token", status)  # type: ignore[arg-type]


def writer_of(outbox: Outbox) -> tuple[OutcomeWriter, list[list[str]]]:
    """An outcome writer on ``outbox``, and what it tells of the messages it moved."""
    bus, told = Bus(), []
    bus.subscribe(StatusesChanged, lambda event: told.append(event.messages))
    storage: Any = SimpleNamespace(outbox=outbox, messages=Messages())
    return OutcomeWriter(storage, bus), told


async def test_outcomes_go_in_groups_of_at_most_a_write_each() -> None:
    outbox = Outbox()
    outbox.gate.clear()
    writer, told = writer_of(outbox)
    count = OUTCOMES_PER_WRITE + 8
    recorded = [asyncio.ensure_future(writer.record(outcome(n))) for n in range(count)]
    await asyncio.sleep(0)
    outbox.gate.set()
    await asyncio.gather(*recorded)
    assert [len(w) for w in outbox.writes] == [OUTCOMES_PER_WRITE, 8]
    await writer.drain(5)
    assert [i for batch in told for i in batch] == [f"m{n:03d}" for n in range(count)]  # once


async def test_an_outcome_is_retried_until_durable_while_the_database_is_away() -> None:
    outbox = Outbox(away_for=2)
    writer, _ = writer_of(outbox)
    await writer.record(outcome(1))  # returns only once it is written
    assert outbox.writes == [["m001"]]


async def test_a_retry_is_recorded_and_not_announced() -> None:
    outbox = Outbox()
    writer, told = writer_of(outbox)
    await writer.record(outcome(1, "queued"))
    await writer.drain(5)
    assert (outbox.writes, told) == ([["m001"]], [])
