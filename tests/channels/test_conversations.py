"""Conversations: one per contact, assigned off the webhook's path, transferred,
resolved and reopened, read; and the messages of one or of an agent's."""

from __future__ import annotations

import json
from typing import Any

from gateway.config import AssignmentConfig
from testkit.helpers import Client, EventStream, async_wait_until, sign_up
from tests.channels.conftest import MOCK, MOCK_HEADERS, MOCK_URL, Gateway


async def _write(gw: Gateway, contact: int, text: str = "hi") -> None:
    body = json.dumps({"contact_id": contact, "message": text})
    assert (await gw.post(MOCK_URL, body, MOCK_HEADERS))[0] == 200


async def _conversations(agent: Client, query: str = "") -> list[dict]:
    status, page = await agent.fetch("GET", f"/api/v1/conversations/{query}")
    assert status == 200, page
    return page["results"]


async def _me(agent: Client) -> dict:
    status, me = await agent.fetch("GET", "/api/v1/agents/me/")
    assert status == 200, me
    return me


async def _assigned(gw: Gateway, count: int, within: float = 5.0) -> dict[str, str | None]:
    """Contact external id → assignee username, once ``count`` are assigned."""
    names: dict[str, str] = {}

    async def done() -> bool:
        agents = await gw.storage.agents.collection.find().to_list()
        names.update({a["_id"]: a["username"] for a in agents})
        found = await _conversations(gw.agent)
        return sum(1 for c in found if c["assignee_id"]) >= count

    await async_wait_until(done, within, f"{count} conversations to be assigned")
    return {
        c["contact"]["external_id"]: names.get(c["assignee_id"] or "")
        for c in await _conversations(gw.agent)
    }


async def test_conversations_go_to_the_least_recently_assigned_available_agent(gateway) -> None:
    gw: Gateway = await gateway(MOCK)  # ana exists
    await sign_up(gw.agent, "bob")
    carla = await sign_up(gw.agent, "carla")
    status, _ = await carla.fetch("PATCH", "/api/v1/agents/me/", json_body={"is_available": False})
    assert status == 200
    for contact in (1, 2, 3):
        await _write(gw, contact)
    assignments = await _assigned(gw, 3)
    assert sorted(a for a in assignments.values() if a) in (
        ["ana", "ana", "bob"],
        ["ana", "bob", "bob"],
    )
    assert "carla" not in assignments.values()  # away
    # A conversation keeps its agent for the next messages, and the contact shows it.
    for contact in (1, 2, 3):
        await _write(gw, contact, "again")
    assert await _assigned(gw, 3) == assignments
    contacts = (await gw.agent.fetch("GET", "/api/v1/contacts/"))[1]["results"]
    assert all(c["assigned_agent_id"] for c in contacts)


async def test_a_new_contacts_conversation_arrives_assigned_with_no_write_of_its_own(
    gateway, monkeypatch
) -> None:
    gw: Gateway = await gateway(MOCK)  # ana exists
    ana = (await _me(gw.agent))["id"]
    await _write(gw, 1)
    await _assigned(gw, 1)  # ana is on the roster
    repository = gw.storage.conversations
    assign_writes: list[object] = []
    assign = repository.assign

    async def counted(pairs: list[tuple[str, str | None]], **kwargs: bool) -> None:
        assign_writes.append(pairs)
        return await assign(pairs, **kwargs)

    monkeypatch.setattr(repository, "assign", counted)
    stream = await EventStream.open(
        gw.agent.base_url, "/api/v1/events/", {"Authorization": f"Bearer {gw.agent.token}"}
    )
    try:
        await _write(gw, 2, "first words")
        await _write(gw, 2, "second words")
        events = [await stream.next() for _ in range(4)]
    finally:
        await stream.close()
    # Each message: message.created, then its conversation, the first already assigned
    # (no unassigned state for a stream to show, no second write to assign it).
    assert [e["event"] for e in events] == ["message.created", "conversation.updated"] * 2
    assert [e["data"]["message"]["content"] for e in events[::2]] == ["first words", "second words"]
    assert [e["data"]["conversation"]["assignee_id"] for e in events[1::2]] == [ana, ana]
    assert assign_writes == []
    contact = (
        await gw.agent.fetch(
            "GET", f"/api/v1/contacts/{events[0]['data']['message']['contact']['id']}/"
        )
    )[1]
    assert contact["assigned_agent_id"] == ana  # shown from the conversation


async def test_an_agent_who_left_on_another_gateway_gives_back_what_this_one_gave_them(
    gateway,
) -> None:
    # Without passes of its own (a long recheck), the gateway keeps the roster it read.
    gw: Gateway = await gateway(MOCK, assignment=AssignmentConfig(recheck_seconds=3600))
    bob = await sign_up(gw.agent, "bob")
    assigner = gw.services.assigner

    async def both_on_the_roster() -> bool:
        return len(assigner.roster) == 2

    await async_wait_until(both_on_the_roster, 5, "bob to join the roster")
    await _write(gw, 1)
    await _write(gw, 2)
    assert sorted(n or "" for n in (await _assigned(gw, 2)).values()) == ["ana", "bob"]
    # Another gateway marks ana away (its roster and its release are its own)...
    ana = (await _me(gw.agent))["id"]
    await gw.storage.agents.update(ana, {"is_available": False})
    for contact in (3, 4):  # ...while this one still offers her new conversations.
        await _write(gw, contact)
    proposed = await _assigned(gw, 4)
    assert "ana" in {proposed["3"], proposed["4"]}
    assigner.nudge()  # its next pass reads the roster

    async def all_bobs() -> bool:
        held = await _conversations(gw.agent)
        return {c["assignee_id"] for c in held} == {(await _me(bob))["id"]}

    await async_wait_until(all_bobs, 5, "ana's conversations to go to bob")


async def test_my_conversations_messages_and_mine_by_me(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    await _write(gw, 1, "for ana")
    await _assigned(gw, 1)
    [conversation] = await _conversations(gw.agent)
    reply = {"contact_id": conversation["contact"]["id"], "content": "ana here"}
    assert (await gw.agent.fetch("POST", "/api/v1/messages/", json_body=reply))[0] == 201
    _, mine = await gw.agent.fetch("GET", "/api/v1/messages/?assignee_id=me")
    _, sent = await gw.agent.fetch("GET", "/api/v1/messages/?agent_id=me")
    assert [m["content"] for m in mine["results"]] == ["ana here", "for ana"]
    assert [m["content"] for m in sent["results"]] == ["ana here"]


async def test_labels_sort_conversations_and_find_them(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    for contact in (1, 2, 3):
        await _write(gw, contact, f"from {contact}")
    by_contact = {c["contact"]["external_id"]: c for c in await _conversations(gw.agent)}
    path = "/api/v1/conversations/{}/"

    async def label(contact: int, labels: Any) -> tuple[int, Any]:
        conversation = by_contact[str(contact)]["id"]
        return await gw.agent.fetch(
            "PATCH", path.format(conversation), json_body={"labels": labels}
        )

    status, one = await label(1, ["Refund", "  VIP  customer ", "refund"])
    assert (status, one["labels"]) == (200, ["refund", "vip customer"])  # lower case, once
    await label(2, ["refund"])
    assert (await label(3, ["vip customer"]))[0] == 200
    status, resolved = await gw.agent.fetch(
        "PATCH", path.format(by_contact["3"]["id"]), json_body={"status": "resolved"}
    )
    assert resolved["labels"] == ["vip customer"]  # a status change keeps them
    refunds = await _conversations(gw.agent, "?label=Refund")
    assert sorted(c["contact"]["external_id"] for c in refunds) == ["1", "2"]
    _, counted = await gw.agent.fetch("GET", "/api/v1/labels/")
    assert counted["results"] == [
        {"name": "refund", "conversations": 2, "open": 2},
        {"name": "vip customer", "conversations": 2, "open": 1},
    ]
    for bad in (["x" * 33], ["-dash first"], ["a"] * 11, "refund", [""]):
        assert (await label(1, bad))[0] == 400, bad
    refused = await gw.agent.fetch(
        "PATCH", path.format(by_contact["2"]["id"]), json_body={"labels": ["new"], "status": "bot"}
    )
    assert refused[0] == 400  # and nothing of it stored:
    two = await gw.agent.fetch("GET", path.format(by_contact["2"]["id"]))
    assert (two[1]["labels"], two[1]["status"]) == (["refund"], "open")
    status, cleared = await label(1, [])
    assert (status, cleared["labels"]) == (200, [])
    assert [
        c["contact"]["external_id"] for c in await _conversations(gw.agent, "?label=refund")
    ] == ["2"]


async def test_a_conversation_given_back_waits_for_someone_else(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    await _write(gw, 1)
    assert await _assigned(gw, 1) == {"1": "ana"}
    [conversation] = await _conversations(gw.agent)
    path = f"/api/v1/conversations/{conversation['id']}/"
    status, queued = await gw.agent.fetch("PATCH", path, json_body={"assignee_id": None})
    assert (status, queued["assignee_id"]) == (200, None)
    # ana alone is available: neither a pass nor the contact's next message gives it back.
    assert await gw.services.assigner.offer() == 0
    await _write(gw, 1, "anyone there?")
    await gw.services.assigner.offer()
    assert [c["id"] for c in await _conversations(gw.agent, "?assignee=none")] == [
        conversation["id"]
    ]
    await sign_up(gw.agent, "bob")  # someone else: it is theirs
    assert await _assigned(gw, 1) == {"1": "bob"}
    # bob gives it back: it is not offered to him (ana's was forgotten once he took it)...
    bob = (await _conversations(gw.agent))[0]["assignee_id"]
    away = await gw.agent.fetch("PATCH", "/api/v1/agents/me/", json_body={"is_available": False})
    assert away[0] == 200  # so that nobody takes it before it is looked at
    assert (await gw.agent.fetch("PATCH", path, json_body={"assignee_id": None}))[0] == 200
    given_back = await gw.storage.conversations.get(conversation["id"])
    assert given_back is not None
    assert given_back.declined_by == (bob,)
    # ...and resolved, reopened it may go to anyone.
    assert (await gw.agent.fetch("PATCH", path, json_body={"status": "resolved"}))[0] == 200
    resolved = await gw.storage.conversations.get(conversation["id"])
    assert resolved is not None
    assert resolved.declined_by == ()


async def test_waiting_conversations_are_assigned_soon_after_an_agent_is_back(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    assert (await gw.agent.fetch("PATCH", "/api/v1/agents/me/", json_body={"is_available": False}))[
        0
    ] == 200
    for contact in (1, 2):
        await _write(gw, contact)
    waiting = await _conversations(gw.agent, "?assignee=none")
    assert [c["assignee_id"] for c in waiting] == [None, None]
    assert (await gw.agent.fetch("PATCH", "/api/v1/agents/me/", json_body={"is_available": True}))[
        0
    ] == 200
    me = await _me(gw.agent)
    assert set((await _assigned(gw, 2, within=2.0)).values()) == {"ana"}
    mine = await _conversations(gw.agent, "?assignee=me")
    assert [c["assignee_id"] for c in mine] == [me["id"]] * 2
    assert await _conversations(gw.agent, "?assignee=none") == []


async def test_an_agent_who_goes_away_or_is_deleted_gives_their_conversations_back(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    await _write(gw, 1)
    await _assigned(gw, 1)
    bob = await sign_up(gw.agent, "bob")
    # ana goes away: her conversation returns to the queue, and bob takes it.
    assert (await gw.agent.fetch("PATCH", "/api/v1/agents/me/", json_body={"is_available": False}))[
        0
    ] == 200
    assert (await _assigned(gw, 1)) == {"1": "bob"}
    # bob is deleted: back to the queue, with nobody left to take it.
    assert (await bob.fetch("DELETE", "/api/v1/agents/me/"))[0] == 204

    async def queued() -> bool:
        return [c["assignee_id"] for c in await _conversations(gw.agent)] == [None]

    await async_wait_until(queued, 5, "the conversation to return to the queue")


async def test_a_disabled_agent_gives_their_conversations_back_even_when_kept_while_away(
    gateway,
) -> None:
    gw: Gateway = await gateway(MOCK, assignment=AssignmentConfig(keep_while_away=True))
    bob = await sign_up(gw.agent, "bob")  # ana (the admin) goes away: bob takes it
    assert (await gw.agent.fetch("PATCH", "/api/v1/agents/me/", json_body={"is_available": False}))[
        0
    ] == 200
    await _write(gw, 1)
    assert (await _assigned(gw, 1)) == {"1": "bob"}
    bob_id = (await _me(bob))["id"]
    disabled = {"disabled": True}
    assert (await gw.agent.fetch("PATCH", f"/api/v1/agents/{bob_id}/", json_body=disabled))[
        0
    ] == 200

    async def queued() -> bool:
        return [c["assignee_id"] for c in await _conversations(gw.agent)] == [None]

    await async_wait_until(queued, 5, "the conversation to return to the queue")


async def test_an_agent_away_can_keep_their_conversations(gateway) -> None:
    gw: Gateway = await gateway(MOCK, assignment=AssignmentConfig(keep_while_away=True))
    await _write(gw, 1)
    await _assigned(gw, 1)
    assert (await gw.agent.fetch("PATCH", "/api/v1/agents/me/", json_body={"is_available": False}))[
        0
    ] == 200
    [conversation] = await _conversations(gw.agent)
    assert conversation["assignee_id"] == (await _me(gw.agent))["id"]


async def test_a_transfer_moves_the_conversation_and_is_streamed(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    bob = await sign_up(gw.agent, "bob")
    bob_id = (await _me(bob))["id"]
    await _write(gw, 1)
    await _assigned(gw, 1)
    [conversation] = await _conversations(gw.agent)
    stream = await EventStream.open(
        bob.base_url, "/api/v1/events/?assignee=me", {"Authorization": f"Bearer {bob.token}"}
    )
    try:
        status, moved = await gw.agent.fetch(
            "PATCH",
            f"/api/v1/conversations/{conversation['id']}/",
            json_body={"assignee_id": bob_id},
        )
        assert (status, moved["assignee_id"]) == (200, bob_id)
        event = await stream.next()
        assert event["event"] == "conversation.updated"
        assert event["data"]["conversation"]["assignee_id"] == bob_id
    finally:
        await stream.close()
    assert [c["id"] for c in await _conversations(bob, "?assignee=me")] == [conversation["id"]]
    bad = await gw.agent.fetch(
        "PATCH", f"/api/v1/conversations/{conversation['id']}/", json_body={"assignee_id": "nobody"}
    )
    assert bad[0] == 400
    assert (
        await gw.agent.fetch("PATCH", "/api/v1/conversations/nope/", json_body={"status": "open"})
    )[0] == 404
    assert (
        await gw.agent.fetch("PATCH", f"/api/v1/conversations/{conversation['id']}/", json_body={})
    )[0] == 400


async def test_each_agent_reads_for_themselves(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    bob = await sign_up(gw.agent, "bob")
    await _write(gw, 1, "one")
    await _write(gw, 1, "two")
    [conversation] = await _conversations(gw.agent)
    cid = conversation["id"]
    status, read = await bob.fetch("POST", f"/api/v1/conversations/{cid}/read/")
    assert (status, read["unread"], read["inbound_count"]) == (200, 0, 2)
    [mine] = await _conversations(gw.agent)  # bob's reading is bob's alone
    [bobs] = await _conversations(bob)
    assert (mine["unread"], bobs["unread"]) == (2, 0)
    assert bobs["read_by"] == {read["read_by"] and next(iter(read["read_by"])): 2}
    await _write(gw, 1, "three")
    [mine] = await _conversations(gw.agent)
    [bobs] = await _conversations(bob)
    assert (mine["unread"], bobs["unread"]) == (3, 1)
    status, read = await gw.agent.fetch("POST", f"/api/v1/conversations/{cid}/read/")
    assert (status, read["unread"]) == (200, 0)
    status, again = await bob.fetch("GET", f"/api/v1/conversations/{cid}/")
    assert (status, again["unread"], sorted(again["read_by"].values())) == (200, 1, [2, 3])


async def test_resolve_read_and_reopen(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    await _write(gw, 1, "one")
    await _write(gw, 1, "two")
    [conversation] = await _conversations(gw.agent)
    assert (conversation["unread"], conversation["last_message"]["content"]) == (2, "two")
    cid = conversation["id"]
    status, read = await gw.agent.fetch("POST", f"/api/v1/conversations/{cid}/read/")
    assert (status, read["unread"]) == (200, 0)
    status, resolved = await gw.agent.fetch(
        "PATCH", f"/api/v1/conversations/{cid}/", json_body={"status": "resolved"}
    )
    assert (status, resolved["status"]) == (200, "resolved")
    assert [c["id"] for c in await _conversations(gw.agent, "?status=resolved")] == [cid]
    assert await _conversations(gw.agent, "?status=open") == []
    await _write(gw, 1, "three")  # a new message reopens it
    [reopened] = await _conversations(gw.agent, "?status=open")
    assert (reopened["id"], reopened["unread"], reopened["last_message"]["direction"]) == (
        cid,
        1,
        "in",
    )
    # A reply becomes the preview; the newest activity comes first. (Its news is
    # written just after the send is answered: gateway/conversation_updates.py.)
    await _write(gw, 2, "other contact")
    sent = await gw.send(reopened["contact"]["id"], "a reply " + "x" * 300)
    listed: list[dict] = []

    async def reply_on_top() -> bool:
        listed[:] = await _conversations(gw.agent)
        return listed[0]["id"] == cid

    await async_wait_until(reply_on_top, 5, "the reply's conversation to come first")
    assert listed[0]["last_message"]["id"] == sent["id"]
    assert len(listed[0]["last_message"]["content"]) == 200
    found = await _conversations(gw.agent, "?q=mock")  # the mock contact's name
    assert {c["id"] for c in found} <= {c["id"] for c in listed}


async def test_messages_of_a_conversation_and_of_an_assignee(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    await _write(gw, 1, "from one")
    await _write(gw, 2, "from two")
    await _assigned(gw, 2)
    bob = await sign_up(gw.agent, "bob")
    bob_id = (await _me(bob))["id"]
    ones = [c for c in await _conversations(gw.agent) if c["contact"]["external_id"] == "1"]
    cid = ones[0]["id"]
    await gw.agent.fetch(
        "PATCH", f"/api/v1/conversations/{cid}/", json_body={"assignee_id": bob_id}
    )
    await bob.fetch(
        "POST",
        "/api/v1/messages/",
        json_body={"contact_id": ones[0]["contact"]["id"], "content": "bob here"},
    )

    async def contents(query: str) -> list[str]:
        status, page = await gw.agent.fetch("GET", f"/api/v1/messages/?{query}")
        assert status == 200, page
        return [m["content"] for m in page["results"]]

    assert await contents(f"conversation_id={cid}") == ["bob here", "from one"]
    assert await contents(f"assignee_id={bob_id}") == ["bob here", "from one"]  # inbound too
    assert await contents(f"agent_id={bob_id}") == ["bob here"]  # sent by
    assert await contents(f"assignee_id={bob_id}&direction=in") == ["from one"]
    assert await contents("conversation_id=nope") == []


async def test_the_counts_of_each_list(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    for contact in (1, 2, 3):
        await _write(gw, contact)
    await _assigned(gw, 3)
    by_contact = {c["contact"]["external_id"]: c["id"] for c in await _conversations(gw.agent)}
    path = "/api/v1/conversations/{}/"
    await gw.agent.fetch("PATCH", path.format(by_contact["2"]), json_body={"status": "pending"})
    away = await gw.agent.fetch("PATCH", "/api/v1/agents/me/", json_body={"is_available": False})
    assert away[0] == 200  # hers go back to the queue
    status, counts = await gw.agent.fetch("GET", "/api/v1/conversations/counts/")
    assert (status, counts) == (200, {"mine": 0, "unassigned": 2, "pending": 1, "bot": 0})
