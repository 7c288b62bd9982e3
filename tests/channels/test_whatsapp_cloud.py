"""WhatsApp through Meta's Cloud API, against a fake Graph API on 127.0.0.1."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest

from gateway.config import ChannelConfig, MediaConfig
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
from testkit.helpers import async_wait_until
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
    return text_message(type=kind, **{kind: {"id": "1037543291543636", "caption": caption}})


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


PDF = b"%PDF-1.7\n" + b"invoice lines\n" * 300 + b"%%EOF"
OGG = b"OggS" + b"\x00voice" * 500

# label, the message's type and object, what the API lists, the file (None: none)
CLOUD_MEDIA = [
    ("image with caption", "image", {"id": "1001", "mime_type": "image/jpeg", "sha256": "x", "caption": "look"},
     {"kind": "image", "mime_type": "image/jpeg", "caption": "look", "file_name": None}, (b"\xff\xd8\xff" + b"j" * 900, "image/jpeg")),
    ("document", "document", {"id": "1002", "mime_type": "application/pdf", "filename": "invoice.pdf"},
     {"kind": "document", "mime_type": "application/pdf", "file_name": "invoice.pdf", "caption": None}, (PDF, "application/pdf")),
    ("voice note", "audio", {"id": "1003", "mime_type": "audio/ogg; codecs=opus", "voice": True},
     {"kind": "voice", "mime_type": "audio/ogg; codecs=opus", "caption": None}, (OGG, "audio/ogg")),
    ("location", "location", {"latitude": -23.5, "longitude": -46.6},
     {"kind": "location", "latitude": -23.5, "longitude": -46.6}, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "kind", "body", "listed", "file"), CLOUD_MEDIA, ids=[c[0] for c in CLOUD_MEDIA]
)
async def test_incoming_media_are_listed_and_download_without_the_token(
    gateway, graph_api, label, kind, body, listed, file
) -> None:
    gw: Gateway = await gateway(cloud(graph_api))
    assert await _post(gw, webhook(messages=(text_message(type=kind, **{kind: body}),))) == 200
    [message] = await gw.listed()
    [media] = message["media"]
    assert media == {**media, **listed, "id": "0"}
    assert "ref" not in media
    if file is None:
        response = await gw.download(f"/api/v1/messages/{message['id']}/media/0/")
        assert response.code == 404
        return
    graph_api.media[body["id"]] = file
    response = await gw.download(f"/api/v1/messages/{message['id']}/media/0/")
    assert (response.code, response.body) == (200, file[0])
    assert response.headers["Content-Type"] == listed["mime_type"]
    shown = json.dumps(dict(response.headers)) + response.body.decode("latin-1")
    assert ACCESS_TOKEN not in shown
    # The Graph API's metadata, then its file URL: both with the token, both on Meta's host.
    assert [r["Authorization"] for r in graph_api.media_requests] == [f"Bearer {ACCESS_TOKEN}"] * 2


async def test_a_cloud_file_gone_or_over_the_cap_is_a_clear_error(gateway, graph_api) -> None:
    gw: Gateway = await gateway(cloud(graph_api), media=MediaConfig(max_bytes=1_000))
    for wamid, media_id in (("wamid.G", "2001"), ("wamid.B", "2002")):
        message = text_message(wamid, type="document", document={"id": media_id})
        assert await _post(gw, webhook(messages=(message,))) == 200
    graph_api.media["2002"] = (PDF * 10, "application/pdf")
    by_media = {m["meta"]["media"][0]["ref"]: m["_id"] for m in await gw.messages()}
    gone = await gw.download(f"/api/v1/messages/{by_media['2001']}/media/0/")
    assert gone.code == 404
    assert "no longer has this file" in gone.body.decode()
    big = await gw.download(f"/api/v1/messages/{by_media['2002']}/media/0/")
    assert big.code == 413
    assert "1000-byte limit" in big.body.decode()
    bad = text_message("wamid.X", type="image", image={"id": "../../me"})
    assert await _post(gw, webhook(messages=(bad,))) == 400  # not a media id: refused


async def test_a_file_bigger_than_meta_said_is_cut_at_the_cap_not_read_to_its_end(
    gateway, graph_api
) -> None:
    gw: Gateway = await gateway(cloud(graph_api), media=MediaConfig(max_bytes=1_000))
    message = text_message("wamid.L", type="document", document={"id": "2003"})
    assert await _post(gw, webhook(messages=(message,))) == 200
    size = 32 * 1024 * 1024
    graph_api.media["2003"] = (b"%PDF-" + bytes(size - 5), "application/pdf")
    graph_api.stated_size["2003"] = 500  # under the cap: only the bytes tell
    (stored,) = await gw.messages()
    big = await gw.download(f"/api/v1/messages/{stored['_id']}/media/0/")
    assert big.code == 413
    assert "1000-byte limit" in big.body.decode()

    async def ended() -> bool:
        return "2003" in graph_api.streamed

    await async_wait_until(ended, 30, "the file server's end of the download")
    # Stopped at the cap: what went out is what the sockets' buffers took, not 32 MB.
    assert graph_api.streamed["2003"] < size // 2


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
