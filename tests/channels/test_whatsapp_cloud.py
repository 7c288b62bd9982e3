"""WhatsApp through Meta's Cloud API, against a fake Graph API on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest

from gateway.config import ChannelConfig
from storage.models import Message
from testkit.fakes.graph import (
    ACCESS_TOKEN,
    APP_SECRET,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    FakeGraph,
    signature,
    text_message,
    webhook,
)
from testkit.fakes.script import DROP, Fail
from tests.channels.conftest import (
    MOCK,
    MOCK_HEADERS,
    MOCK_URL,
    REPLY,
    Gateway,
    Outgoing,
    outgoing_cases,
)

PATH = "/webhooks/whatsapp_cloud/wac/"


@pytest.fixture
async def graph_api() -> AsyncIterator[FakeGraph]:
    fake = await FakeGraph().start()
    yield fake
    await fake.stop()


def cloud(api: FakeGraph) -> ChannelConfig:
    return ChannelConfig(
        name="wac",
        type="whatsapp_cloud",
        settings={
            "access_token": ACCESS_TOKEN,
            "phone_number_id": PHONE_NUMBER_ID,
            "app_secret": APP_SECRET,
            "verify_token": VERIFY_TOKEN,
            "api_base": api.base_url,
        },
    )


async def _post(gw: Gateway, payload: Any, sign_with: str | None = APP_SECRET) -> int:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if sign_with is not None:
        headers["X-Hub-Signature-256"] = signature(body, sign_with)
    return (await gw.post(PATH, body, headers))[0]


@dataclass(frozen=True)
class Incoming:
    label: str
    payload: Any
    status: int = 200
    stored: list[str] = field(default_factory=list)
    sign_with: str | None = APP_SECRET


def _media(kind: str, caption: str = "") -> dict[str, Any]:
    return text_message(type=kind, **{kind: {"id": "MEDIA1", "caption": caption}})


INCOMING = [
    Incoming("text", webhook(messages=(text_message(),)), stored=["Olá"]),
    Incoming("image with caption", webhook(messages=(_media("image", "see"),)), stored=["[image] see"]),
    Incoming("voice note", webhook(messages=(_media("audio"),)), stored=["[audio]"]),
    Incoming("location", webhook(messages=(text_message(type="location", location={"latitude": -23.5, "longitude": -46.6}),)), stored=["[location -23.5, -46.6]"]),
    Incoming("reply button", webhook(messages=(text_message(type="interactive", interactive={"type": "button_reply", "button_reply": {"id": "y", "title": "Yes"}}),)), stored=["Yes"]),
    Incoming("a reaction", webhook(messages=(text_message(type="reaction", reaction={"emoji": "👍"}),)), stored=["[reaction]"]),
    Incoming("two in one call", webhook(messages=(text_message("wamid.A", "a"), text_message("wamid.B", "b"))), stored=["a", "b"]),
    Incoming("the same message twice in one call", webhook(messages=(text_message(), text_message())), stored=["Olá"]),
    Incoming("another number of the same app", webhook(messages=(text_message(),), metadata={"phone_number_id": "999"})),
    Incoming("an account update", {"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "account_update", "value": {}}]}]}),
    Incoming("no signature", webhook(messages=(text_message(),)), 403, sign_with=None),
    Incoming("signed with another secret", webhook(messages=(text_message(),)), 403, sign_with="not-the-app-secret"),
    Incoming("not JSON", b"{nope", 400),
    Incoming("not a WhatsApp account's webhook", {"object": "page", "entry": []}, 400),
    Incoming("a message without its sender", webhook(messages=({"id": "wamid.X", "type": "text", "text": {"body": "x"}},)), 400),
    Incoming("a text past WhatsApp's limit", webhook(messages=(text_message(body="x" * 4097),)), 400),
]  # fmt: skip


@pytest.mark.parametrize("case", INCOMING, ids=[c.label for c in INCOMING])
async def test_incoming(gateway, graph_api, case: Incoming) -> None:
    gw: Gateway = await gateway(cloud(graph_api))
    assert await _post(gw, case.payload, case.sign_with) == case.status
    stored = await gw.messages()
    assert sorted(m["content"] for m in stored) == case.stored
    if case.stored:
        [contact] = await gw.storage.contacts.collection.find().to_list()
        assert (contact["external_id"], contact["name"]) == ("5511999990000", "Zé")


async def test_a_message_meta_delivers_again_is_stored_once(gateway, graph_api) -> None:
    gw: Gateway = await gateway(cloud(graph_api))
    for _ in range(2):  # Meta retries a webhook it did not see answered
        assert await _post(gw, webhook(messages=(text_message("wamid.77"),))) == 200
    assert [m["external_id"] for m in await gw.messages()] == ["wamid.77"]


VERIFY = [
    ("subscribe with our token", {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}, 200, "1158201444"),
    ("another token", {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"}, 403, None),
    ("another mode", {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"}, 403, None),
    ("no challenge", {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN}, 400, None),
    ("no query", {}, 403, None),
]  # fmt: skip


@pytest.mark.parametrize(("label", "query", "status", "body"), VERIFY, ids=[c[0] for c in VERIFY])
async def test_get_verification(gateway, graph_api, label, query, status, body) -> None:
    gw: Gateway = await gateway(cloud(graph_api), MOCK)
    http, base = gw.anonymous.http, gw.anonymous.base_url
    response = await http.fetch(f"{base}{PATH}?{urlencode(query)}", raise_error=False)
    assert response.code == status
    if body is not None:
        assert response.body.decode() == body
        assert response.headers["Content-Type"].startswith("text/plain")
    else:
        assert json.loads(response.body)["error"]["message"]
    # A channel that declares no GET has none.
    response = await http.fetch(f"{base}{MOCK_URL}?{urlencode(query)}", raise_error=False)
    assert (response.code, response.headers["Allow"]) == (405, "POST")


async def _conversation(gw: Gateway) -> str:
    assert await _post(gw, webhook(messages=(text_message(),))) == 200
    [message] = await gw.messages()
    return str(message["contact_id"])


OUTGOING = [
    Outgoing("sent", []),
    Outgoing("network failure, then sent", [DROP], attempts=2),
    Outgoing("throughput limit, then sent", [Fail(400, 130429, "Rate limit hit")]),  # a wait, no attempt
    Outgoing("pair rate limit, then sent", [Fail(400, 131056, "Pair rate limit hit")]),
    Outgoing("service unavailable past the limit", [Fail(503, 131016, "Service unavailable")] * 3, "failed", 3, "131016"),
    Outgoing("outside the 24-hour window", [Fail(400, 131047, "Re-engagement message")], "failed", 1, "131047"),
    Outgoing("expired access token", [Fail(401, 190, "Error validating access token")], "failed", 1, "190"),
]  # fmt: skip


@outgoing_cases(OUTGOING)
async def test_outgoing(gateway, graph_api, case: Outgoing) -> None:
    gw: Gateway = await gateway(cloud(graph_api))
    final = await gw.deliver(graph_api, await _conversation(gw), case)
    if case.status != "sent":
        return
    [request] = graph_api.sent
    assert (request["to"], request["text"]["body"]) == ("5511999990000", REPLY)
    assert request["biz_opaque_callback_data"] == final["_id"]
    assert final["external_id"] == request["id"]


def _status(message: Message, state: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": message.external_id or "wamid.1",
        "status": state,
        "timestamp": "1796140001",
        "recipient_id": "5511999990000",
        "biz_opaque_callback_data": message.id,
        **fields,
    }


async def _sent(gw: Gateway) -> Message:
    message = await gw.send(await _conversation(gw), "hi")
    assert (await gw.final(message["id"]))["status"] == "sent"
    return await gw.stored(message["id"])


async def _status_of(gw: Gateway, message: Message) -> str:
    return (await gw.stored(message.id)).status


async def test_statuses_move_forward_only(gateway, graph_api) -> None:
    gw: Gateway = await gateway(cloud(graph_api))
    message = await _sent(gw)
    for state in ("delivered", "read"):
        assert await _post(gw, webhook(statuses=(_status(message, state),))) == 200
        assert await _status_of(gw, message) == state
    # Late news, even in one call with newer, cannot undo "read"; nor can a failure.
    late = tuple(_status(message, s) for s in ("sent", "delivered", "failed"))
    assert await _post(gw, webhook(statuses=late)) == 200
    assert await _status_of(gw, message) == "read"


async def test_a_failed_status_records_metas_error(gateway, graph_api) -> None:
    gw: Gateway = await gateway(cloud(graph_api))
    message = await _sent(gw)
    errors = [{"code": 131026, "title": "Message undeliverable"}]
    assert await _post(gw, webhook(statuses=(_status(message, "failed", errors=errors),))) == 200
    stored = await gw.stored(message.id)
    assert (stored.status, stored.error) == ("failed", "131026: Message undeliverable")


async def test_forged_or_foreign_statuses_change_nothing(gateway, graph_api) -> None:
    gw: Gateway = await gateway(cloud(graph_api), MOCK)
    ours = await _sent(gw)
    body = '{"contact_id": "m", "message": "hello"}'
    assert (await gw.post(MOCK_URL, body, MOCK_HEADERS))[0] == 200
    [contact] = await gw.storage.contacts.collection.find({"external_id": "m"}).to_list()
    sent = await gw.send(contact["_id"], "to the mock contact")
    assert (await gw.final(sent["id"]))["status"] == "sent"
    theirs = await gw.stored(sent["id"])
    forged = webhook(statuses=(_status(ours, "failed"),))
    assert await _post(gw, forged, sign_with="not-the-app-secret") == 403
    # Signed, but naming another channel's message, another wamid, or nobody.
    signed = (
        _status(theirs, "failed"),
        _status(ours, "failed", id="wamid.someoneelse"),
        {**_status(ours, "failed"), "biz_opaque_callback_data": ""},
    )
    assert await _post(gw, webhook(statuses=signed)) == 200
    for message in (ours, theirs):
        assert await _status_of(gw, message) == "sent"
