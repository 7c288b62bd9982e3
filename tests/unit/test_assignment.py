"""The assigner over in-memory agents and conversations: turns (least recently given
first, the same for new contacts and the queue), the queue, agents who go away or
are deleted, and an offer that loses to another gateway."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from gateway.assignment import PASS_SIZE, Assigner
from gateway.config import AssignmentConfig
from tests.unit.fakes import Announced, MemoryAgents, MemoryConversations, agent, conversation


def assigner(
    agents: MemoryAgents, conversations: MemoryConversations, **config: Any
) -> tuple[Assigner, Announced]:
    storage: Any = SimpleNamespace(agents=agents, conversations=conversations)
    told = Announced()
    return Assigner(storage, told, AssignmentConfig(**config)), told  # type: ignore[arg-type]


async def test_waiting_conversations_are_shared_in_turns_oldest_first() -> None:
    convs = MemoryConversations(*(conversation(n) for n in range(5)))
    a, told = assigner(MemoryAgents(agent("ana"), agent("bob")), convs)
    assert await a.offer() == 5
    holders = convs.holders()
    assert [holders[f"c{n:04d}"] for n in range(5)] == ["ana", "bob", "ana", "bob", "ana"]
    assert [c.id for c in told.changed[0]] == [f"c{n:04d}" for n in range(5)]


async def test_new_contacts_continue_the_turns_the_queue_left() -> None:
    convs = MemoryConversations(conversation(0))
    a, _ = assigner(MemoryAgents(agent("ana"), agent("bob")), convs)
    await a.offer()  # ana took the waiting one: bob is next
    assert a.propose(3) == ["bob", "ana", "bob"]
    assert a.roster == ["ana", "bob"]  # bob was given last: ana goes first next time


async def test_with_nobody_available_new_conversations_wait_in_the_queue() -> None:
    agents = MemoryAgents(agent("ana", available=False))
    convs = MemoryConversations(conversation(0))
    a, _ = assigner(agents, convs)
    assert await a.offer() == 0
    assert a.propose(2) == [None, None]
    agents.set_available("ana", True)
    assert await a.offer() == 1
    assert convs.holders() == {"c0000": "ana"}


async def test_an_agent_who_goes_away_gives_their_conversations_back() -> None:
    convs = MemoryConversations(conversation(0, "ana"), conversation(1, "ana"), conversation(2))
    a, told = assigner(MemoryAgents(agent("ana"), agent("bob")), convs)
    await a.agent_away("ana")
    assert convs.holders() == {"c0000": None, "c0001": None, "c0002": None}
    assert sorted(c.id for c in told.changed[-1]) == ["c0000", "c0001"]
    assert "ana" not in a.roster


async def test_keep_while_away_keeps_them_unless_deleted() -> None:
    convs = MemoryConversations(conversation(0, "ana"))
    a, _ = assigner(MemoryAgents(agent("ana")), convs, keep_while_away=True)
    await a.agent_away("ana")
    assert convs.holders() == {"c0000": "ana"}
    await a.agent_away("ana", gone=True)
    assert convs.holders() == {"c0000": None}


async def test_an_agent_who_left_on_another_gateway_gives_back_what_this_one_proposed() -> None:
    agents = MemoryAgents(agent("ana"), agent("bob"))
    convs = MemoryConversations()
    a, _ = assigner(agents, convs)
    await a.offer()  # the roster is read
    assert a.propose(1) == ["ana"]
    convs.conversations["c0009"] = conversation(9, "ana")  # the inbound path wrote it
    agents.set_available("ana", False)  # ana went away through another gateway
    await a.offer()
    assert convs.holders() == {"c0009": "bob"}  # given back, and offered again


async def test_an_offer_never_takes_what_another_gateway_assigned_meanwhile() -> None:
    convs = MemoryConversations(conversation(0))
    a, told = assigner(MemoryAgents(agent("ana")), convs)

    real_assign = convs.assign

    async def raced(pairs: list[tuple[str, str | None]], *, only_unassigned: bool) -> None:
        convs.conversations["c0000"] = conversation(0, "zoe")  # the other gateway won
        await real_assign(pairs, only_unassigned=only_unassigned)

    convs.assign = raced  # type: ignore[method-assign]
    await a.offer()
    assert convs.holders() == {"c0000": "zoe"}
    assert told.changed == [[]]  # nothing of ours to announce


async def test_a_full_pass_is_followed_by_another_at_once() -> None:
    convs = MemoryConversations(*(conversation(n) for n in range(PASS_SIZE + 3)))
    a, _ = assigner(MemoryAgents(agent("ana")), convs)
    assert await a.offer() == PASS_SIZE
    assert await a.offer() == 3
    assert all(holder == "ana" for holder in convs.holders().values())


async def test_a_conversation_given_back_is_not_offered_straight_back() -> None:
    convs = MemoryConversations(conversation(0, assignee="ana"), conversation(1))
    agents = MemoryAgents(agent("ana"), agent("bob", available=False))
    a, _ = assigner(agents, convs)
    await a.transfer("c0000", None)  # ana gives it back; she is the only one available
    assert await a.offer() == 1  # the other waiting one, not hers again
    assert convs.holders() == {"c0000": None, "c0001": "ana"}
    assert await a.offer() == 0  # it waits, visibly in the queue
    agents.set_available("bob", True)
    assert await a.offer() == 1
    assert convs.holders() == {"c0000": "bob", "c0001": "ana"}
    assert convs.conversations["c0000"].declined_by == ()  # taken: forgotten


async def test_given_back_it_skips_its_turn_and_goes_to_the_next() -> None:
    convs = MemoryConversations(conversation(0, assignee="bob"), conversation(1))
    a, _ = assigner(MemoryAgents(agent("ana"), agent("bob")), convs)
    await a.transfer("c0000", None)
    await a.offer()  # the older one, which bob gave back, is ana's; the newer is bob's
    assert convs.holders() == {"c0000": "ana", "c0001": "bob"}


async def test_a_full_pass_of_given_back_conversations_holds_up_no_one_behind_it() -> None:
    given_back = [conversation(n, assignee="ana") for n in range(PASS_SIZE)]
    convs = MemoryConversations(*given_back, conversation(PASS_SIZE))
    a, _ = assigner(MemoryAgents(agent("ana")), convs)
    for c in given_back:
        await a.transfer(c.id, None)
    assert await a.offer() == 1
    assert convs.holders()[f"c{PASS_SIZE:04d}"] == "ana"
    assert await a.offer() == 0  # no pass after pass over what she gave back
