"""Two gateways on one database share a subscription: one sends its events at a time
(its lease), so nothing goes twice or out of order, and when that one stops the
other takes over from where it got to."""

from __future__ import annotations

import json

from gateway.config import ClusterConfig, SubscriptionsConfig
from testkit.fakes.receiver import Receiver
from testkit.helpers import async_wait_until, logged_after
from tests.channels.conftest import MOCK, MOCK_HEADERS, MOCK_URL, Gateway

QUICK = SubscriptionsConfig(
    allow_private_targets=True, retry_first_seconds=0.05, retry_max_seconds=0.2
)


async def _write(gw: Gateway, contact: int, text: str) -> None:
    body = json.dumps({"contact_id": contact, "message": text})
    assert (await gw.post(MOCK_URL, body, MOCK_HEADERS))[0] == 200


async def test_one_gateway_sends_a_subscription_and_the_other_takes_over(gateway) -> None:
    # A lease of 3 s, renewed each second: a loop held up on a busy machine keeps it.
    sections = {"subscriptions": QUICK, "cluster": ClusterConfig(lease_seconds=3)}
    first: Gateway = await gateway(MOCK, **sections)
    second: Gateway = await gateway(MOCK, **sections)
    receiver = Receiver().start()
    try:
        status, made = await first.agent.fetch(
            "POST",
            "/api/v1/subscriptions/",
            json_body={"url": receiver.url, "events": ["message.created", "conversation.updated"]},
        )
        assert status == 201
        receiver.secret, start = made["secret"], made["last_event_id"]
        for n in range(10):  # through both gateways: one log
            await _write(first if n % 2 else second, n % 3, f"message {n}")

        async def delivered(at_least: int) -> bool:
            logged = [e["id"] for e in await logged_after(first.agent, start)]
            return len(logged) >= at_least and receiver.ids == logged

        async def all_delivered() -> bool:
            return await delivered(10)  # the messages' events at least

        await async_wait_until(all_delivered, 30, "every event to be delivered")
        holders = [g for g in (first, second) if made["id"] in g.services.subscriptions.held]
        assert len(holders) == 1  # one sender for the subscription
        assert len(receiver.accepted) == len(receiver.ids)  # nothing went twice

        [holder] = holders
        other = second if holder is first else first
        await holder.services.subscriptions.stop()  # as a gateway that shuts down: its
        # sender sees its delivery through, so the other starts after it
        await holder.services.subscriptions.release()
        before = len(receiver.ids)
        for n in range(10, 16):
            await _write(holder, n % 3, f"message {n}")

        async def taken_over() -> bool:
            return await delivered(before + 6)

        await async_wait_until(taken_over, 30, "the other gateway to take over")
        assert made["id"] in other.services.subscriptions.held
        assert len(receiver.accepted) == len(receiver.ids)
    finally:
        await receiver.server.stop()
