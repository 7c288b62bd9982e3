"""Messages: sending as an agent, reading conversations, cursor pagination."""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.config import ServerConfig
from gateway.runtime import build_services
from storage.database import Storage
from storage.models import Contact
from testkit.helpers import TEST_CONFIG, Client, CommandCounter, received, seen, sign_up


@pytest.fixture
async def contact(storage: Storage) -> Contact:
    channel = await storage.channels.upsert("support", "telegram", "polling", {})
    return await seen(storage, channel.id, "1001", name="Zé", username="ze")


async def _send(api: Client, contact_id: str, content: str, **headers: str) -> tuple[int, Any]:
    return await api.fetch(
        "POST",
        "/api/v1/messages/",
        json_body={"contact_id": contact_id, "content": content},
        headers=headers or None,
    )


async def test_send_stores_a_queued_message_with_contact_and_agent_inline(
    api: Client, contact: Contact
) -> None:
    status, message = await _send(api, contact.id, "Olá! Como posso ajudar?")
    assert status == 201
    assert message["status"] == "queued"
    assert message["direction"] == "out"
    assert message["content"] == "Olá! Como posso ajudar?"
    assert message["contact"] == {"id": contact.id, "external_id": "1001", "name": "Zé"}
    assert message["agent"]["username"] == "ana"
    assert message["channel_id"] == contact.channel_id
    assert await api.fetch("GET", f"/api/v1/messages/{message['id']}/") == (200, message)


async def test_send_to_an_unknown_contact_is_a_json_404(api: Client, storage: Storage) -> None:
    status, body = await _send(api, "no-such-contact", "hello")
    assert status == 404
    assert body == {"error": {"code": "not_found", "message": "No such contact: no-such-contact"}}
    assert await storage.messages.collection.count_documents({}) == 0


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "Length must be between 1 and 4096."),
        ("   \n ", "Must contain more than white space."),
        ("x" * 4097, "Length must be between 1 and 4096."),
        (42, "Not a valid string."),
        (None, "Field may not be null."),
    ],
)
async def test_invalid_content_is_400_and_stores_nothing(
    api: Client, contact: Contact, storage: Storage, content: Any, problem: str
) -> None:
    status, body = await _send(api, contact.id, content)
    assert status == 400
    assert problem in body["error"]["fields"]["content"]
    assert await storage.messages.collection.count_documents({}) == 0


async def test_content_of_exactly_4096_characters_is_accepted(
    api: Client, contact: Contact
) -> None:
    assert (await _send(api, contact.id, "é" * 4096))[0] == 201


async def test_idempotency_key_makes_a_retry_return_the_same_message(
    api: Client, contact: Contact, storage: Storage
) -> None:
    first = await _send(api, contact.id, "once", **{"Idempotency-Key": "retry-1"})
    again = await _send(api, contact.id, "once", **{"Idempotency-Key": "retry-1"})
    assert first[0] == again[0] == 201
    assert again[1]["id"] == first[1]["id"]
    assert await storage.messages.collection.count_documents({}) == 1
    # The same key for a different message is a client bug, not a resend.
    status, body = await _send(api, contact.id, "twice", **{"Idempotency-Key": "retry-1"})
    assert (status, body["error"]["code"]) == (409, "conflict")
    # Keys belong to one agent: a colleague's equal key is another message.
    bob = await sign_up(api, "bob")
    assert (await _send(bob, contact.id, "once", **{"Idempotency-Key": "retry-1"}))[1][
        "id"
    ] != first[1]["id"]
    assert (await _send(api, contact.id, "x", **{"Idempotency-Key": "has space"}))[0] == 400


async def test_pages_are_newest_first_complete_and_stable_under_inserts(
    api: Client, contact: Contact
) -> None:
    sent = [(await _send(api, contact.id, f"m{i}"))[1]["id"] for i in range(25)]
    status, page1 = await api.fetch("GET", "/api/v1/messages/?page_size=10")
    assert status == 200
    assert len(page1["results"]) == 10
    # New messages arrive while the agent pages through: nothing repeats or goes missing.
    for i in range(5):
        await _send(api, contact.id, f"late{i}")
    seen = [m["id"] for m in page1["results"]]
    next_url = page1["next"]
    while next_url:
        parts = urlsplit(next_url)
        assert parse_qs(parts.query)["page_size"] == ["10"]  # filters carry over
        status, page = await api.fetch("GET", f"{parts.path}?{parts.query}")
        assert status == 200
        seen += [m["id"] for m in page["results"]]
        next_url = page["next"]
    assert seen == list(reversed(sent))


async def test_filters(api: Client, contact: Contact, storage: Storage) -> None:
    other = await seen(storage, contact.channel_id, "2002", name="Other")
    await received(storage, contact, "u1", "oi")
    await _send(api, contact.id, "to ze")
    await _send(api, other.id, "to other")
    bob = await sign_up(api, "bob")
    await _send(bob, contact.id, "from bob")

    async def contents(query: str) -> list[str]:
        status, page = await api.fetch("GET", f"/api/v1/messages/?{query}")
        assert status == 200, page
        return [m["content"] for m in page["results"]]

    assert await contents(f"contact_id={contact.id}") == ["from bob", "to ze", "oi"]
    assert await contents("direction=in") == ["oi"]
    assert await contents("status=queued&direction=out") == ["from bob", "to other", "to ze"]
    bob_id = (await bob.fetch("GET", "/api/v1/agents/"))[1]["results"][0]["id"]
    assert await contents(f"agent_id={bob_id}") == ["from bob"]
    _, everything = await api.fetch("GET", "/api/v1/messages/")
    middle = everything["results"][2]["created_at"]
    after = await contents("created_after=" + middle.replace("+", "%2B"))
    assert after == [m["content"] for m in everything["results"] if m["created_at"] > middle]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page_size=0", "page_size"),
        ("page_size=101", "page_size"),
        ("page_size=ten", "page_size"),
        ("cursor=garbage", "cursor"),
        ("cursor=WzEsMl0", "cursor"),  # valid base64 of [1,2]: wrong types
        ("direction=sideways", "direction"),
        ("status=lost", "status"),
        ("created_after=yesterday", "created_after"),
        ("created_after=2026-01-01T00:00:00", "created_after"),  # no zone: ambiguous
        ("contact=abc", "contact"),
        ("page_size=5&page_size=6", "page_size"),
    ],
)
async def test_bad_list_parameters_are_400(api: Client, query: str, field: str) -> None:
    status, body = await api.fetch("GET", f"/api/v1/messages/?{query}")
    assert status == 400, body
    assert field in body["error"]["fields"]


async def test_unknown_message_is_404(api: Client) -> None:
    assert (await api.fetch("GET", "/api/v1/messages/nope/"))[0] == 404


async def test_a_full_page_is_one_query_at_any_depth(
    counted_storage: Storage, commands: CommandCounter, serve_app
) -> None:
    client = await serve_app(build_services(TEST_CONFIG, counted_storage))
    api = await sign_up(client, "ana")
    contact = await seen(counted_storage, "chan", "1", name="Zé")
    for i in range(30):
        await _send(api, contact.id, f"m{i}")
    url = f"/api/v1/messages/?page_size=7&contact_id={contact.id}"
    pages = 0
    while url:
        commands.commands.clear()
        status, page = await api.fetch("GET", url)
        assert status == 200
        assert {c for c in commands.commands if c[1] == "messages"} == {("find", "messages")}
        if page["next"] or not counted_storage.pages.windowed:
            assert commands.count("find", "messages") == 1
        else:  # the embedded server's last page: its window, then none
            assert commands.count("find", "messages") <= 2
        pages += 1
        url = page["next"] and urlsplit(page["next"])._replace(scheme="", netloc="").geturl()
    assert pages == 5


async def test_next_links_never_come_from_the_callers_host(
    api: Client, contact: Contact, storage: Storage, serve_app
) -> None:
    for i in range(3):
        await _send(api, contact.id, f"m{i}")
    spoofed = {"Host": "evil.example", "X-Forwarded-Proto": "http"}
    status, page = await api.fetch("GET", "/api/v1/messages/?page_size=1", headers=spoofed)
    assert status == 200
    assert page["next"].startswith("/api/v1/messages/?")  # relative: no public URL is set
    config = dataclasses.replace(TEST_CONFIG, server=ServerConfig(public_url="https://gw.example"))
    public = (await serve_app(build_services(config, storage))).as_agent(api.token)
    status, page = await public.fetch("GET", "/api/v1/messages/?page_size=1", headers=spoofed)
    assert page["next"].startswith("https://gw.example/api/v1/messages/?")
