"""The Mock channel: one table of incoming cases, one of outgoing."""

from __future__ import annotations

import json

import pytest

from gateway.config import ChannelConfig
from tests.channels.conftest import MOCK, MOCK_HEADERS, MOCK_SECRET, MOCK_URL, Gateway

SECRET, URL, OK = MOCK_SECRET, MOCK_URL, MOCK_HEADERS

# label, body, headers, expected status, expected stored text (None: nothing stored)
INCOMING = [
    ("text", {"contact_id": 7, "message": "Olá", "name": "Zé"}, OK, 200, "Olá"),
    ("string contact id", {"contact_id": "u-7", "message": "hi"}, OK, 200, "hi"),
    ("no secret", {"contact_id": 7, "message": "hi"}, {}, 401, None),
    ("wrong secret", {"contact_id": 7, "message": "hi"}, {**OK, "X-Mock-Secret": "x"}, 401, None),
    ("empty object", {}, OK, 400, None),
    ("missing message", {"contact_id": 7}, OK, 400, None),
    ("blank message", {"contact_id": 7, "message": "  "}, OK, 400, None),
    ("contact id null", {"contact_id": None, "message": "hi"}, OK, 400, None),
    ("contact id bool", {"contact_id": True, "message": "hi"}, OK, 400, None),
    ("message not text", {"contact_id": 7, "message": ["hi"]}, OK, 400, None),
    ("name not text", {"contact_id": 7, "message": "hi", "name": 5}, OK, 400, None),
    ("not json", b"contact_id=7&message=hi", OK, 400, None),
    ("a list", [1, 2], OK, 400, None),
]


@pytest.mark.parametrize(
    ("label", "body", "headers", "status", "text"), INCOMING, ids=[c[0] for c in INCOMING]
)
async def test_incoming(gateway, label, body, headers, status, text) -> None:
    gw: Gateway = await gateway(MOCK)
    raw = body if isinstance(body, bytes) else json.dumps(body)
    code, _ = await gw.post(URL, raw, headers)
    assert code == status
    stored = await gw.messages()
    assert [m["content"] for m in stored] == ([text] if text else [])
    if text is None:
        assert await gw.storage.contacts.collection.count_documents({}) == 0


async def test_same_message_id_twice_is_stored_once_and_names_follow(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    first = {"contact_id": 7, "message": "hi", "message_id": 1, "name": "Zé"}
    for body in (first, first, {**first, "message_id": 2, "name": "José"}):
        assert (await gw.post(URL, json.dumps(body), OK))[0] == 200
    assert [m["content"] for m in await gw.messages()] == ["hi", "hi"]
    [contact] = await gw.storage.contacts.collection.find().to_list()
    assert contact["name"] == "José"


async def test_unknown_channel_is_404(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    assert (await gw.post("/webhooks/mock/other/", "{}", OK))[0] == 404
    assert (await gw.post("/webhooks/telegram/mock/", "{}", OK))[0] == 404


# label, fail_first_sends, expected status, attempts
OUTGOING = [
    ("sent at once", 0, "sent", 1),
    ("two network failures then sent", 2, "sent", 3),
    ("fails past the attempts limit", 5, "failed", 3),
]


@pytest.mark.parametrize(
    ("label", "failures", "status", "attempts"), OUTGOING, ids=[c[0] for c in OUTGOING]
)
async def test_outgoing(gateway, label, failures, status, attempts) -> None:
    channel = ChannelConfig(
        name="mock", type="mock", settings={"secret": SECRET, "fail_first_sends": failures}
    )
    gw: Gateway = await gateway(channel)
    await gw.post(URL, json.dumps({"contact_id": 7, "message": "hi"}), OK)
    [inbound] = await gw.messages()
    message = await gw.send(inbound["contact_id"], "hello back")
    final = await gw.final(message["id"])
    assert (final["status"], final["attempts"]) == (status, attempts)
    if status == "sent":
        assert final["external_id"].startswith("mock-")
    else:
        assert "configured to fail" in final["error"]


OPEN = ChannelConfig(name="mock", type="mock")  # no secret


@pytest.mark.parametrize(
    ("host", "public_url", "runs"),
    [
        ("127.0.0.1", "", True),  # a laptop: only this machine can call it
        ("0.0.0.0", "", False),  # noqa: S104 - a container or a server
        ("127.0.0.1", "https://gw.example.com", False),  # a proxy on this host publishes it
    ],
)
async def test_without_a_secret_the_webhook_runs_only_for_this_machine(
    gateway, caplog, host: str, public_url: str, runs: bool
) -> None:
    gw: Gateway = await gateway(OPEN, host=host, public_url=public_url)
    body = json.dumps({"contact_id": 7, "message": "hi"})
    code, _ = await gw.post(URL, body, {"Content-Type": "application/json"})
    assert code == (200 if runs else 404)
    assert len(await gw.messages()) == (1 if runs else 0)
    if not runs:
        assert any(
            "channel 'mock' (mock) is off: no secret (MOCK_WEBHOOK_SECRET)" in r.getMessage()
            for r in caplog.records
        )
