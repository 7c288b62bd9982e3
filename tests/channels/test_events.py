"""Agents' live events: Server-Sent Events from the event log, resumable, with tickets."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlencode

import pytest

from gateway.config import EventsConfig
from storage.database import Storage
from testkit.fakes.twilio import ACCOUNT_SID
from testkit.helpers import CommandCounter, EventStream
from tests.channels.conftest import MOCK, MOCK_HEADERS, MOCK_URL, Gateway
from tests.channels.test_whatsapp import PATH, inbound, signed, whatsapp


@pytest.fixture
def storage(counted_storage: Storage) -> Storage:
    """The gateways here send every command through ``commands``."""
    return counted_storage


async def _stream(gw: Gateway, query: str = "", **headers: str) -> EventStream:
    auth = {"Authorization": f"Bearer {gw.agent.token}"}
    stream = await EventStream.open(
        gw.agent.base_url, f"/api/v1/events/{query}", {**auth, **headers}
    )
    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    return stream


async def _write(gw: Gateway, contact: int, text: str, message_id: int | None = None) -> None:
    body = {
        "contact_id": contact,
        "message": text,
        **({"message_id": message_id} if message_id else {}),
    }
    assert (await gw.post(MOCK_URL, json.dumps(body), MOCK_HEADERS))[0] == 200


async def _next_of(stream: EventStream, kind: str, within: float = 10.0) -> dict:
    while True:
        event = await stream.next(within)
        if event["event"] == kind:
            return event


async def test_an_inbound_message_is_streamed_as_message_created(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    stream = await _stream(gw)
    try:
        await _write(gw, 7, "olá")
        event = await _next_of(stream, "message.created")
        assert event["data"]["type"] == "message.created"
        assert event["id"] == event["data"]["id"]
        message = event["data"]["message"]
        assert (message["content"], message["direction"], message["status"]) == (
            "olá",
            "in",
            "received",
        )
        conversation = await _next_of(stream, "conversation.updated")
        assert conversation["data"]["conversation"]["unread"] == 1
        assert conversation["data"]["conversation_id"] == event["data"]["conversation_id"]
    finally:
        await stream.close()


async def test_a_reply_is_streamed_through_sent_then_delivered_from_twilio(
    gateway, twilio_api
) -> None:
    gw: Gateway = await gateway(whatsapp(twilio_api))
    form = inbound()
    assert (await gw.post(PATH, urlencode(form), signed(form)))[0] == 200
    [received] = await gw.messages()
    stream = await _stream(gw)
    try:
        sent = await gw.send(received["contact_id"], "hi")
        created = await _next_of(stream, "message.created")
        while created["data"]["message"]["id"] != sent["id"]:  # the inbound, just before
            created = await _next_of(stream, "message.created")
        assert created["data"]["message"]["status"] == "queued"
        updated = await _next_of(stream, "message.updated")
        assert updated["data"]["message"]["status"] == "sent"
        sid = (await gw.stored(sent["id"])).external_id
        news = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID}
        path = f"{PATH}status/?message_id={sent['id']}"
        assert (await gw.post(path, urlencode(news), signed(news, path)))[0] == 200
        delivered = await _next_of(stream, "message.updated")
        assert delivered["data"]["message"]["status"] == "delivered"
        assert delivered["id"] > updated["id"]
    finally:
        await stream.close()


async def test_a_stream_without_an_event_id_starts_at_the_end_without_looking_for_it(
    gateway, commands: CommandCounter
) -> None:
    # Finding the log's newest entry sorted it all on the embedded server (a second
    # per 50,000 entries), on every connect and every start.
    gw: Gateway = await gateway(MOCK)
    await _write(gw, 4, "earlier")
    streams = [await _stream(gw) for _ in range(3)]
    try:
        await _write(gw, 4, "news")
        for stream in streams:
            event = await _next_of(stream, "message.created")
            assert event["data"]["message"]["content"] == "news"
    finally:
        for stream in streams:
            await stream.close()
    sorts = [dict(f.get("sort", {})) for f in commands.finds if f["find"] == "events"]
    assert sorts  # the hub tails the log
    assert all(s == {"list_key": 1} for s in sorts), sorts


async def test_a_reconnect_with_last_event_id_gets_exactly_what_it_missed(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    stream = await _stream(gw)
    await _write(gw, 1, "before")
    seen = await _next_of(stream, "conversation.updated")  # the last event of that webhook
    await stream.close()
    for n in range(3):
        await _write(gw, 1, f"missed {n}", message_id=100 + n)
    again = await _stream(gw, **{"Last-Event-ID": seen["id"]})
    try:
        # Replayed from the log, or streamed once settled (a shared database): either
        # way each once, in order, and then the live ones.
        await _write(gw, 1, "live")
        events = [await again.next() for _ in range(8)]  # 4 messages, 4 conversation updates
        created = [e for e in events if e["event"] == "message.created"]
        texts = [e["data"]["message"]["content"] for e in created]
        assert texts == ["missed 0", "missed 1", "missed 2", "live"]
        ids = [e["id"] for e in events]
        assert ids == sorted(ids)
        assert len(set(ids)) == 8
        assert min(ids) > seen["id"]
    finally:
        await again.close()


async def test_an_unknown_or_expired_event_id_gets_a_reset(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    old = "01000000-0000-7000-8000-000000000000"  # 2004: long past the retention
    stream = await _stream(gw, **{"Last-Event-ID": old})
    try:
        reset = await stream.next()
        assert reset["event"] == "reset"
        await _write(gw, 3, "after the reset")
        event = await _next_of(stream, "message.created")
        assert event["data"]["message"]["content"] == "after the reset"
    finally:
        await stream.close()


async def test_a_ticket_opens_one_stream_once_and_nothing_opens_without_one(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    status, body = await gw.agent.fetch("POST", "/api/v1/events/ticket/")
    assert status == 201
    assert body["expires_in"] == 60
    ticket = body["ticket"]
    first = await EventStream.open(gw.agent.base_url, f"/api/v1/events/?ticket={ticket}")
    try:
        assert first.status == 200
        await _write(gw, 4, "by ticket")
        event = await _next_of(first, "message.created")
        assert event["data"]["message"]["content"] == "by ticket"
    finally:
        await first.close()
    # Used, forged, none, or an access token where a ticket goes: each refused.
    for query in (f"?ticket={ticket}", "?ticket=forged", "", f"?ticket={gw.agent.token}"):
        refused = await EventStream.open(gw.agent.base_url, f"/api/v1/events/{query}")
        assert refused.status == 401, query
        await refused.close()
    # And a ticket is no access token.
    status, _ = await gw.agent.as_agent(ticket).fetch("GET", "/api/v1/messages/")
    assert status == 401


async def test_a_stream_ends_when_its_sign_in_ends(gateway) -> None:
    gw: Gateway = await gateway(MOCK, events=EventsConfig(heartbeat_seconds=0.2))
    stream = await _stream(gw)
    try:
        assert (await gw.agent.fetch("POST", "/auth/logout/"))[0] in (200, 204)
        ended = await asyncio.wait_for(stream.reader.read(), 10)  # closed at the next heartbeat
        # It says so, once, and nothing else: sign in again rather than reconnect.
        assert ended.count(b"event:") == 1
        assert b'event: signed_out\ndata: {"reason": "the sign-in ended"' in ended
        assert stream.reader.at_eof()
    finally:
        await stream.close()


async def test_streams_filter_by_conversation(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    await _write(gw, 5, "first of 5")
    [message] = await gw.messages()
    conversation_id = (await gw.stored(message["_id"])).conversation_id
    stream = await _stream(gw, f"?conversation_id={conversation_id}")
    try:
        await _write(gw, 6, "someone else")
        await _write(gw, 5, "again 5")
        event = await _next_of(stream, "message.created")
        assert event["data"]["message"]["content"] == "again 5"
    finally:
        await stream.close()


async def test_a_note_stays_with_the_agents_and_tells_whom_it_names(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    await _write(gw, 7, "my parcel is lost")
    status, page = await gw.agent.fetch("GET", "/api/v1/conversations/")
    [conversation] = page["results"]
    path = f"/api/v1/conversations/{conversation['id']}/notes/"
    status, made = await gw.agent.fetch("POST", "/api/v1/agents/",
                                        json_body={"username": "bea", "password": "x" * 12})  # fmt: skip
    assert status == 201, made
    before = await gw.messages()
    stream = await _stream(gw)
    try:
        text = "@bea can you check the carrier? (cc @nobody, mail@example.com)"
        status, note = await gw.agent.fetch("POST", path, json_body={"content": text})
        assert status == 201, note
        assert (note["content"], note["mentions"], note["agent"]["username"]) == (
            text,
            [made["id"]],
            "ana",
        )
        event = await _next_of(stream, "note.created")
        assert event["data"]["note"] == note
        assert event["data"]["conversation_id"] == conversation["id"]
    finally:
        await stream.close()
    assert await gw.messages() == before  # not a message: nothing to send or count
    status, again = await gw.agent.fetch("GET", f"/api/v1/conversations/{conversation['id']}/")
    assert (again["unread"], again["last_message"]) == (
        conversation["unread"],
        conversation["last_message"],
    )
    status, listed = await gw.agent.fetch("GET", path)
    assert (status, [n["id"] for n in listed["results"]]) == (200, [note["id"]])
    for bad in ({"content": ""}, {"content": "x" * 4097}, {}):
        assert (await gw.agent.fetch("POST", path, json_body=bad))[0] == 400
    missing = "/api/v1/conversations/nope/notes/"
    assert (await gw.agent.fetch("POST", missing, json_body={"content": "hi"}))[0] == 404
    assert (await gw.agent.fetch("GET", missing))[0] == 404
