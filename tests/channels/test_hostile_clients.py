"""Hostile clients, round two: each test is one way a client broke a promise of the
README (issue 30), run against the gateway's services on a real database.

The promises about the running process (loop latency, connection slots, streams)
are tested against `bot-gateway serve` in tests/gateway/test_hostile_edge.py.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from gateway.config import ChannelConfig, MediaConfig
from storage import faqs
from testkit.fakes.twilio import FakeTwilio
from testkit.helpers import multipart, sign_in
from tests.channels.conftest import MOCK, MOCK_HEADERS, MOCK_URL, Gateway
from tests.channels.test_media_out import JPEG, by_url, telegram_contact, upload
from tests.channels.test_telegram import telegram
from tests.channels.test_whatsapp import PATH, inbound, signed, whatsapp


@pytest.fixture
def start(gateway, telegram_api) -> Any:
    """A gateway with a Telegram channel, and a contact who wrote."""

    async def begin(**sections: Any) -> tuple[Gateway, str]:
        gw: Gateway = await gateway(telegram(telegram_api), **sections)
        return gw, await telegram_contact(gw)

    return begin


OPEN_MOCK = ChannelConfig(name="mock", type="mock", settings={})
HELLO = json.dumps({"contact_id": 7, "message": "hi", "message_id": 1})
JSON = {"Content-Type": "application/json"}


async def test_an_ended_sign_in_stays_ended_however_many_end_after_it(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    stolen = await sign_in(gw.anonymous, "ana")
    assert (await stolen.fetch("POST", "/auth/logout/"))[0] == 204
    agent = await gw.storage.agents.get_by_username("ana")
    assert agent is not None
    until = datetime.now(UTC) + timedelta(days=7)
    for _ in range(150):  # what 150 sign-in and sign-out cycles leave behind
        await gw.storage.agents.end_sign_in(agent.id, str(uuid.uuid4()), until)
    assert (await stolen.fetch("GET", "/api/v1/agents/"))[0] == 401
    refreshed = await gw.anonymous.fetch(
        "POST", "/auth/token/refresh/", json_body={"refresh": stolen.refresh}
    )
    assert refreshed[0] == 401
    assert (await gw.agent.fetch("GET", "/api/v1/agents/"))[0] == 200  # other sign-ins go on


async def test_an_ended_sign_in_is_forgotten_once_its_tokens_expired(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    agent = await gw.storage.agents.get_by_username("ana")
    assert agent is not None
    past = datetime.now(UTC) - timedelta(seconds=1)
    old = str(uuid.uuid4())
    await gw.storage.agents.end_sign_in(agent.id, old, past)
    await gw.storage.agents.end_sign_in(agent.id, str(uuid.uuid4()), past + timedelta(days=7))
    document = await gw.storage.agents.collection.find_one({"_id": agent.id})
    assert document is not None
    assert old not in document["signed_out"]  # no token of it can be presented any more
    assert len(document["signed_out"]) == 1


async def test_the_open_mock_webhook_refuses_what_a_local_proxy_forwards(gateway) -> None:
    gw: Gateway = await gateway(OPEN_MOCK, public_url="")
    for forwarded in (
        {"X-Forwarded-For": "198.51.100.7"},
        {"Forwarded": "for=198.51.100.7"},
        {"X-Real-IP": "198.51.100.7"},
    ):
        status, answer = await gw.post(MOCK_URL, HELLO, {**JSON, **forwarded})
        assert status == 403, answer
        assert "this machine" in json.loads(answer)["error"]["message"]
    assert await gw.messages() == []
    assert (await gw.post(MOCK_URL, HELLO, JSON))[0] == 200  # a direct local call


async def test_a_tampered_cursor_is_a_400_and_reads_nothing(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    for n in range(3):
        body = json.dumps({"contact_id": 7, "message": f"m{n}", "message_id": n})
        assert (await gw.post(MOCK_URL, body, MOCK_HEADERS))[0] == 200
    status, page = await gw.agent.fetch("GET", "/api/v1/messages/?page_size=1")
    assert status == 200
    cursor = parse_qs(urlsplit(page["next"]).query)["cursor"][0]
    assert (await gw.agent.fetch("GET", f"/api/v1/messages/?page_size=1&cursor={cursor}"))[0] == 200
    payload, _, mac = cursor.partition(".")
    (key,) = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert key == page["results"][0]["id"]  # a key, nothing of how the page is read
    # Another key under the same MAC, and no MAC at all.
    other = key[:-1] + ("0" if key[-1] != "0" else "1")
    forged = base64.urlsafe_b64encode(json.dumps([other]).encode()).decode().rstrip("=")
    for tampered in (f"{forged}.{mac}", forged, f"{payload}.{mac[:-2]}AA"):
        status, answer = await gw.agent.fetch(
            "GET", f"/api/v1/messages/?page_size=1&cursor={tampered}"
        )
        assert status == 400, answer
        assert list(answer["error"]["fields"]) == ["cursor"]


async def test_faq_suggestions_read_a_bounded_number_of_messages(
    gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw: Gateway = await gateway(MOCK)
    for n in range(6):  # the oldest three ask one thing, the newest three another
        text = "where is my order" if n < 3 else "do you ship abroad"
        body = json.dumps({"contact_id": n, "message": text, "message_id": n})
        assert (await gw.post(MOCK_URL, body, MOCK_HEADERS))[0] == 200
    monkeypatch.setattr(faqs, "SUGGESTIONS_SCANNED", 3)
    status, found = await gw.agent.fetch("GET", "/api/v1/faqs/suggestions/?days=365")
    assert status == 200, found
    assert [s["example"] for s in found["results"]] == ["do you ship abroad"]


@pytest.mark.parametrize(
    ("declared", "stored"),
    [
        ("image/png\x01", None),  # a control character
        ("image/pngé", None),  # not Latin-1 in a header
        ("Image/PNG; charset=x", "image/png; charset=x"),
        ("image/png; x=\x01", "image/png"),
        ("text/html\r\nX-Injected: 1", None),
    ],
)
async def test_a_contacts_file_with_an_odd_type_downloads_with_a_safe_one(
    gateway, twilio_api: FakeTwilio, declared: str, stored: str | None
) -> None:
    twilio_api.media["ME1"] = (JPEG, "image/jpeg")
    gw: Gateway = await gateway(whatsapp(twilio_api))
    form = inbound(
        body="", NumMedia="1", MediaUrl0=twilio_api.media_url("ME1"), MediaContentType0=declared
    )
    assert (await gw.post(PATH, urlencode(form), signed(form)))[0] == 200
    [message] = await gw.messages()
    assert message["meta"]["media"][0]["mime_type"] == stored
    response = await gw.download(f"/api/v1/messages/{message['_id']}/media/0/")
    assert (response.code, response.body) == (200, JPEG)
    assert response.headers["Content-Type"] in (stored or "image/jpeg", "image/jpeg")


async def test_an_odd_type_stored_by_an_older_version_is_never_served(gateway, twilio_api) -> None:
    twilio_api.media["ME1"] = (JPEG, "image/jpeg")
    gw: Gateway = await gateway(whatsapp(twilio_api))
    form = inbound(body="", NumMedia="1", MediaUrl0=twilio_api.media_url("ME1"))
    assert (await gw.post(PATH, urlencode(form), signed(form)))[0] == 200
    [message] = await gw.messages()
    # As an older version stored it, before types were checked.
    await gw.storage.messages.collection.update_one(
        {"_id": message["_id"]}, {"$set": {"meta.media.0.mime_type": "image/jpé\x01g"}}
    )
    response = await gw.download(f"/api/v1/messages/{message['_id']}/media/0/")
    assert (response.code, response.body) == (200, JPEG)
    assert response.headers["Content-Type"] == "image/jpeg"  # the provider's, which is valid


A_PDF = "https://files.example.com/a.pdf"
B_PDF = "https://files.example.com/b.pdf"


async def test_an_idempotency_key_replayed_with_another_file_is_a_409(start) -> None:
    # The same key and caption: only the file tells the requests apart.
    gw, contact_id = await start()
    key = {"Idempotency-Key": "send-1"}

    async def send(media_url: str) -> tuple[int, Any]:
        body = {"contact_id": contact_id, "content": "the invoice", "media_url": media_url}
        return await gw.agent.fetch("POST", "/api/v1/messages/", json_body=body, headers=key)

    first, again, other = await send(A_PDF), await send(A_PDF), await send(B_PDF)
    assert (first[0], again[0], again[1]["id"]) == (201, 201, first[1]["id"])
    assert other[0] == 409, other
    fields = {"contact_id": contact_id, "content": "the invoice"}
    body, content_type = multipart(fields, [("file", "a.jpg", JPEG, "image/jpeg")])
    status, answer = await gw.agent.fetch(
        "POST", "/api/v1/messages/", body=body, headers={"Content-Type": content_type, **key}
    )
    assert status == 409, answer
    assert await gw.storage.uploads.files.count_documents({}) == 0  # the refused file is gone
    assert await gw.storage.messages.collection.count_documents({"direction": "out"}) == 1


async def test_uploads_past_the_hourly_quota_or_the_total_cap_are_refused(start) -> None:
    per_hour = MediaConfig(upload_bytes_per_agent_hour=len(JPEG) * 2)
    gw, contact_id = await start(media=per_hour)
    answers = [(await upload(gw, contact_id, "a.jpg", JPEG, "image/jpeg")) for _ in range(3)]
    assert [status for status, _ in answers] == [201, 201, 429]
    assert "media.upload_bytes_per_agent_hour" in answers[2][1]["error"]["message"]
    assert await gw.storage.uploads.files.count_documents({}) == 2
    # media_url sends store nothing here, and are not counted.
    assert (await by_url(gw, contact_id, "https://files.example.com/a.pdf"))[0] == 201


async def test_uploads_past_the_stored_total_are_a_413_naming_it(start) -> None:
    gw, contact_id = await start(media=MediaConfig(max_stored_upload_bytes=len(JPEG)))
    assert (await upload(gw, contact_id, "a.jpg", JPEG, "image/jpeg"))[0] == 201
    status, answer = await upload(gw, contact_id, "b.jpg", JPEG, "image/jpeg")
    assert status == 413, answer
    assert "media.max_stored_upload_bytes" in answer["error"]["message"]
    assert await gw.storage.uploads.files.count_documents({}) == 1


async def test_the_docs_page_cannot_be_framed(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    response = await gw.anonymous.http.fetch(gw.anonymous.base_url + "/api/v1/docs/")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
