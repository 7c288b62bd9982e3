"""A channel's lane and the dispatcher's sends, with a fake clock, an in-memory
outbox and a scripted channel: order per contact, concurrency slots, pacing per
channel and per chat, flood waits, retries with backoff, and claims another
process left or changed."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from channels.base import NetworkFailure, Throttled, Undeliverable
from gateway.bus import Bus
from gateway.config import DeliveryConfig
from gateway.metrics import Metrics
from gateway.outbound import Dispatcher
from gateway.workers import Supervisor
from tests.unit.fakes import (
    FakeClock,
    MemoryOutbox,
    NoMessages,
    ScriptedChannel,
    claimed_elsewhere,
    unsent,
)


class Harness:
    """A lane of ``channel`` on a real :class:`Dispatcher` over in-memory storage."""

    def __init__(self, channel: ScriptedChannel, **delivery: Any) -> None:
        self.clock = FakeClock()
        self.outbox = MemoryOutbox()
        self.channel = channel
        config = DeliveryConfig(**{"concurrency": 8, "max_attempts": 3, **delivery})
        storage: Any = SimpleNamespace(outbox=self.outbox, messages=NoMessages())
        files: Any = None  # text only: no file is sent here
        self.dispatcher = Dispatcher(
            storage, config, Metrics(), Supervisor(), files, Bus(), clock=self.clock
        )
        self.lane = self.dispatcher.lane(channel)  # type: ignore[arg-type]
        self.dispatcher.lanes[channel.id] = self.lane

    def queue(self, *contacts: str) -> list[str]:
        messages = [unsent(contact, self.clock) for contact in contacts]
        self.outbox.put(*messages)
        for message in messages:
            self.lane.add(message)
        return [m.id for m in messages]

    async def step(self) -> list[str]:
        """One pass of the lane, its sends run to their recorded outcomes; the ids it
        claimed."""
        before = len(self.outbox.claims)
        await self.lane.step()
        while self.dispatcher._sends:
            await asyncio.gather(*list(self.dispatcher._sends))
        return [i for claim in self.outbox.claims[before:] for i in claim]


async def test_a_contacts_messages_leave_in_order_one_at_a_time() -> None:
    h = Harness(ScriptedChannel())
    a1, a2, b1 = h.queue("ana", "ana", "bob")
    assert await h.step() == [a1, b1]  # ana's second waits for her first
    assert await h.step() == [a2]
    assert [message_id for _, message_id in h.channel.sent] == [a1, b1, a2]
    assert await h.step() == []


async def test_concurrency_slots_bound_the_sends_at_once() -> None:
    h = Harness(ScriptedChannel(), concurrency=2)
    ids = h.queue("ana", "bob", "cy", "di")
    await h.lane.step()
    assert h.dispatcher.slots.free == 0
    assert h.outbox.claims == [ids[:2]]
    await asyncio.gather(*list(h.dispatcher._sends))
    assert h.dispatcher.slots.free == 2
    assert await h.step() == ids[2:]


async def test_a_chats_gap_holds_its_next_message_while_others_go() -> None:
    h = Harness(ScriptedChannel(per_chat=1.0))
    a1, a2, b1 = h.queue("ana", "ana", "bob")
    assert await h.step() == [a1, b1]
    assert await h.step() == []  # ana's chat needs a second between messages
    assert await h.lane.step() == 1.0  # and the lane knows how long to wait
    h.clock.advance(0.99)
    assert await h.step() == []
    h.clock.advance(0.01)
    assert await h.step() == [a2]


async def test_the_channels_rate_spaces_every_send() -> None:
    h = Harness(ScriptedChannel(per_channel=0.5))
    a, b, c = h.queue("ana", "bob", "cy")
    assert await h.step() == [a]
    h.clock.advance(0.5)
    assert await h.step() == [b]
    h.clock.advance(0.5)
    assert await h.step() == [c]


async def test_a_flood_wait_pauses_the_channel_and_is_not_an_attempt() -> None:
    h = Harness(ScriptedChannel(script=[Throttled("slow down", retry_after=30)]))
    a, b = h.queue("ana", "bob")
    assert await h.step() == [a, b]  # ana's is refused, bob's goes
    [outcomes] = [o for o in h.outbox.finished if o[0].message_id == a]
    assert (outcomes[0].status, outcomes[0].counted) == ("queued", False)
    c = h.queue("cy")[0]
    h.clock.advance(29.9)
    assert await h.step() == []  # the whole channel waits, not only ana
    h.clock.advance(0.1)
    assert await h.step() == [c, a]  # by due time: cy's came due first
    assert h.outbox.messages[a].attempts == 0
    assert h.dispatcher.pacing(h.channel).flood_waits == 1  # type: ignore[arg-type]


async def test_transient_failures_back_off_then_fail_with_the_reason() -> None:
    failures = [NetworkFailure("provider down")] * 3
    h = Harness(ScriptedChannel(script=list(failures)), backoff_seconds=2.0, max_attempts=3)
    [a] = h.queue("ana")
    for expected in (2.0, 4.0):  # doubles each time, with jitter of up to a quarter
        assert await h.step() == [a]
        wait = (h.outbox.messages[a].next_attempt_at - h.clock.now()).total_seconds()
        assert 0.75 * expected <= wait <= expected
        assert await h.step() == []
        h.clock.advance(wait + 0.001)  # the due time, to the microsecond it was stored
    assert await h.step() == [a]
    assert h.outbox.status[a] == "failed"
    assert h.outbox.finished[-1][0].error == "provider down"
    assert await h.step() == []


async def test_a_permanent_failure_fails_at_once_and_the_next_message_goes() -> None:
    h = Harness(ScriptedChannel(script=[Undeliverable("bot blocked", "403")]))
    a1, a2 = h.queue("ana", "ana")
    assert await h.step() == [a1]
    assert (h.outbox.status[a1], h.outbox.finished[0][0].error) == ("failed", "403: bot blocked")
    assert await h.step() == [a2]
    assert h.outbox.status[a2] == "sent"


async def test_a_claim_another_process_left_is_taken_over_once_it_expires() -> None:
    h = Harness(ScriptedChannel())
    theirs = claimed_elsewhere(unsent("ana", h.clock), h.clock.now() + timedelta(seconds=10))
    h.outbox.put(theirs)
    h.lane.add(theirs)
    assert await h.step() == []
    assert await h.lane.step() == 10.0  # it waits for the claim's deadline, no longer
    h.clock.advance(10)
    assert await h.step() == [theirs.id]
    assert h.outbox.released == [theirs.id]
    assert h.channel.sent == [("chat-ana", theirs.id)]


async def test_a_claim_the_database_refused_is_read_again_and_sent_once() -> None:
    h = Harness(ScriptedChannel())
    a, b = h.queue("ana", "bob")
    h.outbox.refuse_claims = {a}  # changed behind our back between read and claim
    assert await h.step() == [a, b]
    assert h.dispatcher.slots.free == 8  # the refused claim's slot came back
    h.outbox.refuse_claims = set()
    assert await h.step() == [a]
    assert sorted(i for _, i in h.channel.sent) == [a, b]
