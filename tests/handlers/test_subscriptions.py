"""Subscriptions through the API: admins only, the secret shown once, bad input a 400
that stores nothing, private targets refused unless allowed (by the URL, and by the
address a name resolves to when a delivery connects)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.clock import SYSTEM_CLOCK
from gateway.subscription_work import WebhookPoster
from handlers.events import event_json
from storage.database import Storage
from storage.models import Event, EventType, Subscription
from storage.records import utcnow
from testkit.fakes.receiver import Receiver
from testkit.helpers import Client, sign_up

HOOK = {"url": "https://crm.example.com/hooks/gateway", "events": ["message.created"]}


async def _create(api: Client, **body: Any) -> tuple[int, Any]:
    return await api.fetch("POST", "/api/v1/subscriptions/", json_body={**HOOK, **body})


async def test_an_admin_subscribes_and_the_secret_is_shown_once(api: Client) -> None:
    status, created = await _create(api, description="CRM")
    assert status == 201
    secret = created.pop("secret")
    assert secret.startswith("whsec_")
    assert created["events"] == ["message.created"]
    assert (created["paused"], created["disabled_reason"], created["failing_since"]) == (
        False, None, None,
    )  # fmt: skip
    path = f"/api/v1/subscriptions/{created['id']}/"
    assert await api.fetch("GET", path) == (200, created)
    _, page = await api.fetch("GET", "/api/v1/subscriptions/")
    assert page["results"] == [created]

    status, paused = await api.fetch("PATCH", path, json_body={"paused": True})
    assert (status, paused["paused"]) == (200, True)
    status, changed = await api.fetch(
        "PATCH", path, json_body={"paused": False, "events": ["conversation.updated"]}
    )
    assert (status, changed["paused"], changed["events"]) == (200, False, ["conversation.updated"])
    assert (await api.fetch("GET", f"{path}deliveries/"))[1] == {"results": [], "next": None}
    assert (await api.fetch("DELETE", path))[0] == 204
    assert (await api.fetch("GET", path))[0] == 404
    assert (await api.fetch("DELETE", path))[0] == 404


async def test_only_admins_manage_subscriptions(api: Client) -> None:
    bob = await sign_up(api, "bob")
    status, refused = await _create(bob)
    assert (status, refused["error"]["message"]) == (403, "only an admin can manage subscriptions")
    assert (await bob.fetch("GET", "/api/v1/subscriptions/"))[0] == 403
    _, created = await _create(api)
    for method, suffix in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "deliveries/")):
        body = {"paused": True} if method == "PATCH" else None
        path = f"/api/v1/subscriptions/{created['id']}/{suffix}"
        assert (await bob.fetch(method, path, json_body=body))[0] == 403, (method, suffix)
    status, minted = await api.fetch(
        "POST", "/api/v1/tokens/", json_body={"name": "crm", "role": "integration",
                                             "scopes": ["read", "send"]}
    )  # fmt: skip
    assert status == 201
    assert (await _create(api.as_agent(minted["token"])))[0] == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://crm.example.com/"}, "url"),
        ({"url": "https://user:pw@crm.example.com/"}, "url"),
        ({"url": "http://127.0.0.1:8080/hook"}, "url"),
        ({"url": "http://[::1]/hook"}, "url"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "url"),  # cloud metadata
        ({"url": "http://10.0.0.5/"}, "url"),
        ({"url": "http://[::ffff:127.0.0.1]/"}, "url"),
        ({"events": []}, "events"),
        ({"events": ["message.created", "message.created"]}, "events"),
        ({"events": ["message.deleted"]}, "events.0"),
        ({"secret": "whsec_mine"}, "secret"),
    ],
)
async def test_a_bad_subscription_is_a_400_and_stores_nothing(
    api: Client, storage: Storage, body: dict[str, Any], field: str
) -> None:
    status, refused = await _create(api, **body)
    assert (status, list(refused["error"]["fields"])) == (400, [field])
    assert await storage.subscriptions.collection.count_documents({}) == 0


async def test_a_replay_needs_an_event_id_the_log_keeps(api: Client) -> None:
    _, created = await _create(api)
    path = f"/api/v1/subscriptions/{created['id']}/replay/"
    for after in ("not-an-id", "01000000-0000-7000-8000-000000000000"):  # 2004: gone
        status, refused = await api.fetch("POST", path, json_body={"after": after})
        assert (status, list(refused["error"]["fields"])) == (400, ["after"])
    status, replayed = await api.fetch("POST", path, json_body={"after": created["last_event_id"]})
    assert (status, replayed["last_event_id"]) == (200, created["last_event_id"])


async def test_a_name_that_resolves_to_a_private_address_is_refused_when_it_connects() -> None:
    receiver = Receiver(secret="whsec_" + "A" * 44).start()
    poster = WebhookPoster(lambda event: {"id": event.id}, False, 5.0, SYSTEM_CLOCK)
    now = utcnow()
    subscription = Subscription(
        "s1", f"http://localhost:{receiver.server.port}/hook", frozenset(EventType), "",
        receiver.secret, "", "a1", now, now,
    )  # fmt: skip
    event = Event("e1", EventType.MESSAGE_CREATED, "c1", None, None, now)  # type: ignore[arg-type]
    try:
        attempt = await poster(subscription, event)
        assert attempt.status is None
        assert "private, loopback or link-local" in (attempt.error or "")
        assert receiver.tries == []  # nothing reached it
        allowed = WebhookPoster(lambda event: {"id": event.id}, True, 5.0, SYSTEM_CLOCK)
        try:
            assert (await allowed(subscription, event)).status == 200  # allowed: it goes
        finally:
            await allowed.close()
        assert receiver.tries == ["e1"]
    finally:
        await poster.close()
        await receiver.server.stop()


async def test_the_event_of_a_disabled_subscription_carries_it_without_its_secret(
    storage: Storage,
) -> None:
    now = utcnow()
    disabled = Subscription(
        "s1", "https://crm.example.com/", frozenset({EventType.MESSAGE_CREATED}), "CRM", "",
        "", "a1", now, now, disabled_reason="every delivery failed for 48 hours: HTTP 500",
    )  # fmt: skip
    [written] = await storage.events.append([(EventType.SUBSCRIPTION_DISABLED, None, disabled)])
    stored = await storage.events.collection.find_one({"_id": written.id})
    assert stored is not None
    assert (stored["conversation_id"], stored["data"]["secret"]) == ("", "")
    [read] = await storage.events.after("", 10)
    shown = event_json(read)
    assert shown["type"] == "subscription.disabled"
    assert shown["subscription"]["disabled_reason"].startswith("every delivery failed")
    assert shown["subscription"]["events"] == ["message.created"]
    assert "secret" not in shown["subscription"]
