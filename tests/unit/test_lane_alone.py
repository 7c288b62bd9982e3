"""A lane on its own (gateway/lane.py), with a launcher that only records what it is
asked to send: which messages a step claims, given the slots free and each
contact's order, and what a refused claim or a settled send gives back."""

from __future__ import annotations

from typing import Any

from channels.base import Channel
from gateway.lane import Lane, Slots
from gateway.pacing import Pacing
from storage.outbox import Outcome, Unsent
from tests.unit.fakes import FakeClock, MemoryOutbox, ScriptedChannel, unsent


class Recorder:
    """A launcher that starts nothing: it keeps what it was asked to send."""

    owner = "this-process"

    def __init__(self, slots: int) -> None:
        self.live: set[str] = set()
        self.slots = Slots(slots)
        self.launched: list[str] = []

    def launch(self, channel: Channel, message: Unsent, attempts: int, token: str) -> None:
        self.launched.append(message.id)
        self.live.add(message.id)


def lane_of(slots: int) -> tuple[Lane, Recorder, MemoryOutbox, FakeClock]:
    clock, outbox, sends = FakeClock(), MemoryOutbox(), Recorder(slots)
    channel: Any = ScriptedChannel()
    return Lane(channel, outbox, Pacing(0, 0, clock), sends, 60.0, clock), sends, outbox, clock


def sent(lane: Lane, sends: Recorder, message_id: str) -> None:
    """The send of ``message_id`` ended and its outcome is durable."""
    sends.slots.give()
    lane.settle(Outcome(message_id, "t1", "sent"), 1)


async def test_a_step_claims_each_contacts_oldest_as_far_as_slots_allow() -> None:
    lane, sends, outbox, clock = lane_of(slots=2)
    ana = [unsent("ana", clock) for _ in range(2)]
    bea, cai = unsent("bea", clock), unsent("cai", clock)
    outbox.put(*ana, bea, cai)
    for message in (*ana, bea, cai):
        lane.add(message)
    await lane.step()
    assert sends.launched == [ana[0].id, bea.id]  # oldest first; two slots, two sends
    assert sends.slots.free == 0
    sent(lane, sends, bea.id)
    await lane.step()
    assert sends.launched[-1] == cai.id  # Ana's second waits for her first
    sent(lane, sends, ana[0].id)
    await lane.step()
    assert sends.launched[-1] == ana[1].id


async def test_a_claim_another_process_took_gives_its_slot_back() -> None:
    lane, sends, outbox, clock = lane_of(slots=4)
    ana, bea = unsent("ana", clock), unsent("bea", clock)
    outbox.put(ana, bea)
    outbox.refuse_claims.add(ana.id)  # changed behind our back
    lane.add(ana)
    lane.add(bea)
    await lane.step()
    assert sends.launched == [bea.id]
    assert sends.slots.free == 3


async def test_a_retry_waits_its_backoff_on_the_lanes_clock() -> None:
    lane, sends, outbox, clock = lane_of(slots=1)
    ana = unsent("ana", clock)
    outbox.put(ana)
    lane.add(ana)
    await lane.step()
    sends.slots.give()
    lane.settle(Outcome(ana.id, "t1", "queued"), 1, retry_in=30.0)
    assert await lane.step() == 30.0  # nothing due: it says how long to wait
    clock.advance(30.0)
    await lane.step()
    assert sends.launched == [ana.id, ana.id]
