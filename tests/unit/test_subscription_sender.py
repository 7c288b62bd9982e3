"""One subscription's sender alone, on an in-memory log and store: events go in order,
each until a 2xx with the same id, the cursor moves only past what is done, a replay
or a pause takes effect mid-retry, and a subscription failing for the log's whole
retention is disabled with its reason."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from common.backoff import Backoff
from gateway.subscription_sender import Attempt, Policy, SubscriptionSender
from storage.models import Conversation, Event, EventType, Subscription
from tests.unit.fakes import START, FakeClock, until

WANTED = frozenset({EventType.MESSAGE_CREATED})
POLICY = Policy(Backoff(0.001, 0.004), timedelta(hours=48), poll_seconds=0.01)


def _event(n: int, type_: EventType = EventType.MESSAGE_CREATED) -> Event:
    subject: Any = Conversation  # the sender never looks inside
    return Event(f"e{n:04d}", type_, "conv", None, subject, START)


class FakeLog:
    def __init__(self, events: list[Event]) -> None:
        self.events = events

    async def after(self, key: str, limit: int, *, before: str | None = None) -> list[Event]:
        return [e for e in self.events if e.id > key][:limit]

    def horizon(self) -> str:
        return "f"  # every event may be read


class FakeStore:
    def __init__(self, subscription: Subscription) -> None:
        self.subscription: Subscription | None = subscription
        self.log: list[dict[str, Any]] = []

    async def get(self, subscription_id: str) -> Subscription | None:
        return self.subscription

    async def advance(self, subscription_id: str, cursor: str, to: str) -> bool:
        assert self.subscription is not None
        if self.subscription.cursor != cursor:
            return False
        self.subscription = replace(self.subscription, cursor=to, failing_since=None)
        return True

    async def failing(self, subscription_id: str, since: datetime, error: str) -> None:
        assert self.subscription is not None
        self.subscription = replace(self.subscription, failing_since=since, last_error=error)

    async def update(self, subscription_id: str, changes: dict[str, Any]) -> Subscription | None:
        assert self.subscription is not None
        self.subscription = replace(self.subscription, **changes)
        return self.subscription

    async def logged(self, delivery: dict[str, Any]) -> None:
        self.log.append(delivery)


def _subscription(cursor: str = "e0000") -> Subscription:
    return Subscription("s1", "https://crm.example/hook", WANTED, "", "whsec_x", cursor, "a1",
                        START, START)  # fmt: skip


class Receiver:
    """Answers each try as scripted (then 200), and keeps what it got."""

    def __init__(self, clock: FakeClock, script: list[int | None] | None = None) -> None:
        self.clock = clock
        self.script = list(script or [])
        self.tries: list[str] = []
        self.got: list[str] = []

    async def __call__(self, subscription: Subscription, event: Event) -> Attempt:
        self.tries.append(event.id)
        status = self.script.pop(0) if self.script else 200
        self.clock.advance(60)
        if status is not None and 200 <= status < 300:
            self.got.append(event.id)
        return Attempt(status, None if status == 200 else "down", 5)


def _sender(
    store: FakeStore, log: FakeLog, receiver: Receiver, clock: FakeClock
) -> SubscriptionSender:
    return SubscriptionSender("s1", store, log, receiver, POLICY, _told, clock)


async def _told(subscription: Subscription) -> None:
    raise AssertionError("not disabled here")


async def _run_until(sender: SubscriptionSender, condition: Any) -> None:
    task = asyncio.create_task(sender.run())
    try:
        for _ in range(2000):
            if condition():
                return
            await asyncio.sleep(0.001)
        raise AssertionError("never happened")
    finally:
        task.cancel()


async def test_each_event_goes_in_order_once_it_got_a_2xx_with_the_same_id() -> None:
    clock = FakeClock()
    events = [_event(1), _event(2, EventType.CONVERSATION_UPDATED), _event(3), _event(4)]
    store, log = FakeStore(_subscription()), FakeLog(events)
    receiver = Receiver(clock, [500, 500, 500, None, 200, 503])
    await _run_until(_sender(store, log, receiver, clock), lambda: len(receiver.got) == 3)
    assert receiver.got == ["e0001", "e0003", "e0004"]  # e0002 is not a wanted type
    assert receiver.tries == ["e0001"] * 5 + ["e0003", "e0003", "e0004"]
    assert [d["attempt"] for d in store.log] == [1, 2, 3, 4, 5, 1, 2, 1]
    assert [d["status"] for d in store.log] == [500, 500, 500, None, 200, 503, 200, 200]
    await until(lambda: store.subscription is not None and store.subscription.cursor == "e0004")
    assert store.subscription is not None
    assert store.subscription.failing_since is None


async def test_the_cursor_moves_past_unwanted_events_without_a_delivery() -> None:
    clock = FakeClock()
    store = FakeStore(_subscription())
    log = FakeLog([_event(n, EventType.MESSAGE_UPDATED) for n in range(1, 6)])
    receiver = Receiver(clock)
    sender = _sender(store, log, receiver, clock)
    await _run_until(sender, lambda: store.subscription.cursor == "e0005")  # type: ignore[union-attr]
    assert receiver.tries == []


async def test_a_replay_mid_retry_starts_again_after_its_event() -> None:
    clock = FakeClock()
    store, log = FakeStore(_subscription()), FakeLog([_event(n) for n in range(1, 4)])
    receiver = Receiver(clock, [200, 200, 500, 500])
    sender = _sender(store, log, receiver, clock)
    task = asyncio.create_task(sender.run())
    try:
        for _ in range(2000):
            if receiver.tries.count("e0003") >= 2:
                break
            await asyncio.sleep(0.001)
        await store.update("s1", {"cursor": "e0001"})  # what the replay route does
        sender.wake.set()
        for _ in range(2000):
            if receiver.got[-2:] == ["e0002", "e0003"] and len(receiver.got) == 4:
                break
            await asyncio.sleep(0.001)
    finally:
        task.cancel()
    assert receiver.got == ["e0001", "e0002", "e0002", "e0003"]


async def test_a_subscription_failing_for_the_whole_retention_is_disabled() -> None:
    clock = FakeClock()
    store, log = FakeStore(_subscription()), FakeLog([_event(1)])
    receiver = Receiver(clock, [500] * 10_000)
    policy = replace(POLICY, give_up_after=timedelta(hours=1))  # each try takes 60 s here
    told: list[Subscription] = []

    async def disabled(subscription: Subscription) -> None:
        told.append(subscription)

    sender = SubscriptionSender("s1", store, log, receiver, policy, disabled, clock)
    await asyncio.wait_for(sender.run(), 10)  # returns: disabled
    assert store.subscription is not None
    assert store.subscription.disabled_reason == "every delivery failed for 1 hours; the last: down"
    assert len(receiver.tries) == 61  # the first at START, the last an hour later
    assert store.subscription.cursor == "e0000"  # nothing was done
    [said] = told  # for the event that says so: the subscription, without its secret
    assert (said.disabled_reason, said.secret) == (store.subscription.disabled_reason, "")


async def test_a_paused_subscription_stops_between_tries() -> None:
    clock = FakeClock()
    store, log = FakeStore(_subscription()), FakeLog([_event(1)])
    receiver = Receiver(clock, [500] * 10_000)
    sender = _sender(store, log, receiver, clock)
    task = asyncio.create_task(sender.run())
    await until(lambda: len(receiver.tries) >= 1)
    await store.update("s1", {"paused": True})
    sender.wake.set()
    await asyncio.wait_for(task, 10)  # returns: nothing is tried any more
    assert receiver.got == []
    assert store.subscription is not None
    assert store.subscription.cursor == "e0000"


async def test_a_stopping_sender_sees_its_delivery_through_and_sends_no_more() -> None:
    clock = FakeClock()
    store, log = FakeStore(_subscription()), FakeLog([_event(n) for n in range(1, 4)])
    receiver = Receiver(clock)
    sender = _sender(store, log, receiver, clock)

    async def answered_then_told_to_stop(subscription: Subscription, event: Event) -> Attempt:
        sender.stopping = True  # the gateway stops while this delivery is under way
        return await receiver(subscription, event)

    sender.post = answered_then_told_to_stop
    await asyncio.wait_for(sender.run(), 10)
    assert receiver.got == ["e0001"]
    assert store.subscription is not None
    assert store.subscription.cursor == "e0001"  # written: the next holder starts after it
