"""API tokens: admins mint them (the secret shown once, stored hashed), tokens do what
their scopes say and nothing that needs an agent, and a revoked one is refused at
once by every gateway on the database."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import pytest

from gateway.runtime import build_services
from storage.conversations import Arrival
from storage.database import Storage
from storage.models import Contact
from testkit.helpers import TEST_CONFIG, Client, EventStream, received, seen, sign_up

ALL_SCOPES = ["read", "send", "conversations", "admin"]


@pytest.fixture
async def contact(storage: Storage) -> Contact:
    channel = await storage.channels.upsert("support", "telegram", "polling", {})
    contact = await seen(storage, channel.id, "1001", name="Zé")
    message_id, _ = await received(storage, contact, "u1", "Oi")
    newest = await storage.messages.get(message_id)
    assert newest is not None
    await storage.conversations.arrived([Arrival(contact, channel.name, channel.type, newest, 1)])
    return contact


async def _mint(
    api: Client, scopes: list[str], role: str = "integration", name: str = "helper"
) -> Client:
    status, body = await api.fetch(
        "POST", "/api/v1/tokens/", json_body={"name": name, "role": role, "scopes": scopes}
    )
    assert status == 201, body
    return api.as_agent(body["token"])


async def test_a_token_is_shown_once_stored_hashed_and_listed_with_its_last_use(
    api: Client, storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    status, created = await api.fetch(
        "POST",
        "/api/v1/tokens/",
        json_body={"name": "CRM sync", "role": "integration", "scopes": ["read", "send"]},
    )
    assert status == 201
    secret = created.pop("token")
    assert secret.startswith("bgw_")
    assert len(secret) >= 40
    assert created["hint"] == f"bgw_…{secret[-4:]}"
    assert (created["name"], created["role"], created["scopes"]) == (
        "CRM sync", "integration", ["read", "send"],
    )  # fmt: skip
    assert created["last_used_at"] is None
    stored = await storage.api_tokens.collection.find_one({"_id": created["id"]})
    assert stored is not None
    assert secret not in str(stored)
    assert stored["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()

    token = api.as_agent(secret)
    assert (await token.fetch("GET", "/api/v1/contacts/"))[0] == 200
    status, page = await api.fetch("GET", "/api/v1/tokens/")
    assert status == 200
    [listed] = page["results"]
    assert "token" not in listed
    assert listed["last_used_at"] is not None
    assert (await api.fetch("GET", f"/api/v1/tokens/{created['id']}/"))[1] == listed
    assert secret not in caplog.text  # nor in any log line


async def test_scopes_decide_what_a_token_may_call(api: Client, contact: Contact) -> None:
    reader = await _mint(api, ["read"])
    sender = await _mint(api, ["send"])
    send = {"contact_id": contact.id, "content": "Olá"}
    status, refused = await reader.fetch("POST", "/api/v1/messages/", json_body=send)
    assert (status, refused["error"]["message"]) == (403, "this API token lacks the send scope")
    assert (await sender.fetch("GET", "/api/v1/messages/"))[0] == 403  # no read scope
    status, message = await sender.fetch("POST", "/api/v1/messages/", json_body=send)
    assert status == 201
    # The message names the token that sent it, with its role.
    assert message["agent"] == {
        "id": message["agent"]["id"], "username": "helper", "kind": "integration",
    }  # fmt: skip
    status, listed = await reader.fetch(
        "GET", f"/api/v1/messages/?agent_id={message['agent']['id']}"
    )
    assert [m["id"] for m in listed["results"]] == [message["id"]]

    conversation = f"/api/v1/conversations/{message['conversation_id']}/"
    resolve = {"status": "resolved"}
    assert (await reader.fetch("PATCH", conversation, json_body=resolve))[0] == 403
    handler = await _mint(api, ["read", "conversations"])
    status, changed = await handler.fetch("PATCH", conversation, json_body=resolve)
    assert (status, changed["status"]) == (200, "resolved")
    faq = {"question": "horário?", "answer": "9-18h"}
    assert (await handler.fetch("POST", "/api/v1/faqs/", json_body=faq))[0] == 403


async def test_a_token_is_never_an_agent(api: Client, contact: Contact) -> None:
    bot = await _mint(api, ALL_SCOPES)
    for method, path, body in [
        ("GET", "/api/v1/agents/me/", None),
        ("POST", "/auth/logout/", None),
        ("POST", "/api/v1/events/ticket/", None),
    ]:
        status, refused = await bot.fetch(method, path, json_body=body)
        assert (status, refused["error"]["code"]) == (403, "forbidden"), path
        assert "agent's sign-in" in refused["error"]["message"]
    status, refused = await bot.fetch("GET", "/api/v1/conversations/?assignee=me")
    assert (status, refused["error"]["code"]) == (400, "validation_error")
    # Not in the roster, so never offered a conversation.
    _, agents = await api.fetch("GET", "/api/v1/agents/")
    assert [a["username"] for a in agents["results"]] == ["ana"]
    # The bot's own sign-in cannot be refreshed or its password guessed: it has none.
    assert (await bot.fetch("POST", "/auth/token/refresh/", json_body={"refresh": bot.token}))[
        0
    ] == 401


async def test_only_admins_manage_tokens(api: Client) -> None:
    bob = await sign_up(api, "bob")
    body = {"name": "x", "role": "bot", "scopes": ["read"]}
    for method, path, payload in [
        ("POST", "/api/v1/tokens/", body),
        ("GET", "/api/v1/tokens/", None),
    ]:
        status, refused = await bob.fetch(method, path, json_body=payload)
        assert (status, refused["error"]["message"].startswith("only an admin")) == (403, True)
    reader = await _mint(api, ["read"])
    assert (await reader.fetch("GET", "/api/v1/tokens/"))[0] == 403
    assert (await reader.fetch("POST", "/api/v1/tokens/", json_body=body))[0] == 403
    # An admin-scoped token manages agents and tokens as an admin would.
    admin = await _mint(api, ["read", "admin"])
    assert (await admin.fetch("POST", "/api/v1/tokens/", json_body=body))[0] == 201
    _, agents = await api.fetch("GET", "/api/v1/agents/")
    bob_id = next(a["id"] for a in agents["results"] if a["username"] == "bob")
    status, changed = await admin.fetch(
        "PATCH", f"/api/v1/agents/{bob_id}/", json_body={"disabled": True}
    )
    assert (status, changed["disabled"]) == (200, True)
    status, _ = await admin.fetch(
        "PATCH", f"/api/v1/agents/{bob_id}/", json_body={"display_name": "not a token's"}
    )
    assert status == 403  # an agent's own fields are theirs alone


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "bot", "scopes": ["read"]}, "name"),
        ({"name": "", "role": "bot", "scopes": ["read"]}, "name"),
        ({"name": "x", "role": "human", "scopes": ["read"]}, "role"),
        ({"name": "x", "role": "bot", "scopes": []}, "scopes"),
        ({"name": "x", "role": "bot", "scopes": ["read", "read"]}, "scopes"),
        ({"name": "x", "role": "bot", "scopes": ["root"]}, "scopes.0"),
        ({"name": "x", "role": "bot", "scopes": ["read"], "owner": "me"}, "owner"),
    ],
)
async def test_a_bad_token_request_is_a_400_and_stores_nothing(
    api: Client, storage: Storage, body: dict[str, Any], field: str
) -> None:
    status, refused = await api.fetch("POST", "/api/v1/tokens/", json_body=body)
    assert (status, list(refused["error"]["fields"])) == (400, [field])
    assert await storage.api_tokens.collection.count_documents({}) == 0


async def test_a_revoked_token_is_refused_at_once_by_every_gateway(
    api: Client, storage: Storage, serve_app
) -> None:
    token = await _mint(api, ALL_SCOPES)
    other = (await serve_app(build_services(TEST_CONFIG, storage))).as_agent(token.token)
    assert (await other.fetch("GET", "/api/v1/contacts/"))[0] == 200
    stream = await EventStream.open(
        other.base_url, "/api/v1/events/", {"Authorization": f"Bearer {token.token}"}
    )
    try:
        assert stream.status == 200
        _, page = await api.fetch("GET", "/api/v1/tokens/")
        token_id = page["results"][0]["id"]
        assert (await api.fetch("DELETE", f"/api/v1/tokens/{token_id}/"))[0] == 204
        for gateway in (token, other):
            status, refused = await gateway.fetch("GET", "/api/v1/contacts/")
            assert (status, refused["error"]["message"]) == (401, "unknown or revoked API token")
        # The other gateway's stream ends at its next check of the grant.
        assert await asyncio.wait_for(stream.reader.read(), 30) is not None
    finally:
        await stream.close()
    assert (await api.fetch("DELETE", f"/api/v1/tokens/{token_id}/"))[0] == 404


async def test_forged_tokens_are_refused(api: Client) -> None:
    await _mint(api, ["read"])
    for forged in ["bgw_", "bgw_" + "A" * 43, "bgw_\u00e9", "bgw_" + "x" * 5000]:
        status, refused = await api.as_agent(forged).fetch("GET", "/api/v1/contacts/")
        assert status in (400, 401), forged
        assert refused is None or "error" in refused
