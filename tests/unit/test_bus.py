"""The in-process bus: handlers of a type, in the order they subscribed, sync or async,
each awaited before the next; other types are not told."""

from __future__ import annotations

from gateway.bus import AssignmentsMade, Bus, ConversationsWaiting, StatusesChanged


async def test_handlers_hear_their_type_in_order_and_async_ones_are_awaited() -> None:
    bus, heard = Bus(), []

    async def later(event: StatusesChanged) -> None:
        heard.append(("async", len(event.messages)))

    bus.subscribe(StatusesChanged, lambda event: heard.append(("sync", len(event.messages))))
    bus.subscribe(StatusesChanged, later)
    bus.subscribe(ConversationsWaiting, lambda _: heard.append(("waiting", 0)))
    await bus.publish(StatusesChanged([]))
    assert heard == [("sync", 0), ("async", 0)]
    await bus.publish(AssignmentsMade([]))  # nobody subscribed: nothing happens
    await bus.publish(ConversationsWaiting())
    assert heard[-1] == ("waiting", 0)
