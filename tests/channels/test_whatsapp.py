"""WhatsApp through the real twilio client against a fake Twilio API on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from gateway.config import ChannelConfig, MediaConfig
from testkit.fakes.script import DROP, Fail
from testkit.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FROM, FakeTwilio, sign
from tests.channels.conftest import (
    MOCK,
    MOCK_HEADERS,
    MOCK_URL,
    PUBLIC_URL,
    REPLY,
    Gateway,
    Outgoing,
    outgoing_cases,
)

PATH = "/webhooks/whatsapp/wa/"
FORM = "application/x-www-form-urlencoded"


def whatsapp(api: FakeTwilio) -> ChannelConfig:
    return ChannelConfig(
        name="wa",
        type="whatsapp",
        settings={
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "from_number": FROM,
            "api_base": api.base_url,
        },
    )


def inbound(sid: str = "SM1", body: str = "Olá", **extra: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": "whatsapp:+5511999990000",
        "To": f"whatsapp:{FROM}",
        "Body": body,
        "ProfileName": "Zé",
        "NumMedia": "0",
        **extra,
    }


def signed(params: dict[str, str], path: str = PATH) -> dict[str, str]:
    # Twilio signs the URL it called: the public one, not what the gateway sees.
    return {"Content-Type": FORM, "X-Twilio-Signature": sign(PUBLIC_URL + path, params)}


# label, form, headers (None: correctly signed), expected status, expected stored text
INCOMING = [
    ("text", inbound(), None, 200, "Olá"),
    ("image", inbound(body="", NumMedia="1", MediaUrl0="https://api.twilio.com/m/1", MediaContentType0="image/jpeg"), None, 200, "[image]"),
    ("image with caption", inbound(body="see", NumMedia="1", MediaUrl0="https://x/1", MediaContentType0="image/png"), None, 200, "[image] see"),
    ("location", inbound(body="", Latitude="-23.5", Longitude="-46.6"), None, 200, "[location -23.5, -46.6]"),
    ("no signature", inbound(), {"Content-Type": FORM}, 403, None),
    ("bad signature", inbound(), {"Content-Type": FORM, "X-Twilio-Signature": "Zm9yZ2Vk"}, 403, None),
    ("signed for another URL", inbound(), {"Content-Type": FORM, "X-Twilio-Signature": sign("http://127.0.0.1/webhooks/whatsapp/wa/", inbound())}, 403, None),
    ("signed with another token", inbound(), {"Content-Type": FORM, "X-Twilio-Signature": sign(PUBLIC_URL + PATH, inbound(), "other")}, 403, None),
    ("no MessageSid", {k: v for k, v in inbound().items() if k != "MessageSid"}, None, 400, None),
    ("no From", {k: v for k, v in inbound().items() if k != "From"}, None, 400, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "form", "headers", "status", "text"), INCOMING, ids=[c[0] for c in INCOMING]
)
async def test_incoming(gateway, twilio_api, label, form, headers, status, text) -> None:
    gw: Gateway = await gateway(whatsapp(twilio_api))
    code, answer = await gw.post(PATH, urlencode(form), headers or signed(form))
    assert code == status, answer
    if status == 200:
        assert "<Response></Response>" in answer  # TwiML: send nothing back
    stored = await gw.messages()
    assert [m["content"] for m in stored] == ([text] if text else [])
    if text:
        [contact] = await gw.storage.contacts.collection.find().to_list()
        assert (contact["external_id"], contact["name"]) == ("+5511999990000", "Zé")


async def test_the_same_message_sid_twice_is_one_message(gateway, twilio_api) -> None:
    gw: Gateway = await gateway(whatsapp(twilio_api))
    form = inbound("SM77")
    for _ in range(2):
        assert (await gw.post(PATH, urlencode(form), signed(form)))[0] == 200
    assert len(await gw.messages()) == 1


async def _conversation(gw: Gateway) -> str:
    form = inbound()
    await gw.post(PATH, urlencode(form), signed(form))
    [message] = await gw.messages()
    return message["contact_id"]


OUTGOING = [
    Outgoing("sent", []),
    Outgoing("network failure, then sent", [DROP], attempts=2),
    Outgoing("rate limited, then sent", [Fail(429, 20429, "Too Many Requests")]),  # a wait, no attempt
    Outgoing("server error past the limit", [Fail(500, 20500, "Internal Server Error")] * 3, "failed", 3, "20500"),
    Outgoing("not a WhatsApp number", [Fail(400, 63003, "Channel could not find To address")], "failed", 1, "63003"),
    Outgoing("outside the window, as Twilio knows it", [Fail(400, 63016, "Failed to send freeform message because you are outside the allowed window")], "failed", 1, "63016"),
    Outgoing("bad credentials", [Fail(401, 20003, "Authenticate")], "failed", 1, "20003"),
]  # fmt: skip


@outgoing_cases(OUTGOING)
async def test_outgoing(gateway, twilio_api, case: Outgoing) -> None:
    gw: Gateway = await gateway(whatsapp(twilio_api))
    final = await gw.deliver(twilio_api, await _conversation(gw), case)
    if case.status != "sent":
        return
    [request] = twilio_api.sent
    assert (request["To"], request["From"], request["Body"]) == (
        "whatsapp:+5511999990000",
        f"whatsapp:{FROM}",
        REPLY,
    )
    assert final["external_id"] == request["sid"]
    callback = urlsplit(request["StatusCallback"])
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == f"{PUBLIC_URL}{PATH}status/"
    assert parse_qs(callback.query) == {"message_id": [final["_id"]]}


async def _status(gw: Gateway, message_id: str, status: str, **extra: str) -> int:
    path = f"{PATH}status/?message_id={message_id}"
    sid = (await gw.stored(message_id)).external_id or "SM1"
    form = {"MessageSid": sid, "MessageStatus": status, "AccountSid": ACCOUNT_SID, **extra}
    code, _ = await gw.post(path, urlencode(form), signed(form, path))
    return code


async def test_status_callbacks_move_forward_only(gateway, twilio_api) -> None:
    gw: Gateway = await gateway(whatsapp(twilio_api))
    message = await gw.send(await _conversation(gw), "hi")
    assert (await gw.final(message["id"]))["status"] == "sent"

    async def status() -> Any:
        return (await gw.stored(message["id"])).status

    assert await _status(gw, message["id"], "delivered") == 200
    assert await status() == "delivered"
    assert await _status(gw, message["id"], "read") == 200
    assert await status() == "read"
    # A late "delivered" or "sent" cannot undo "read"; neither can a late failure.
    for late in ("delivered", "sent", "undelivered"):
        assert await _status(gw, message["id"], late) == 200
        assert await status() == "read"


async def test_failed_status_records_twilio_error(gateway, twilio_api) -> None:
    gw: Gateway = await gateway(whatsapp(twilio_api))
    message = await gw.send(await _conversation(gw), "hi")
    await gw.final(message["id"])
    await _status(
        gw, message["id"], "undelivered", ErrorCode="63016", ErrorMessage="Outside the window"
    )
    stored = await gw.stored(message["id"])
    assert (stored.status, stored.error) == ("failed", "63016: Outside the window")


async def test_forged_status_callback_changes_nothing(gateway, twilio_api) -> None:
    gw: Gateway = await gateway(whatsapp(twilio_api))
    message = await gw.send(await _conversation(gw), "hi")
    await gw.final(message["id"])
    path = f"{PATH}status/?message_id={message['id']}"
    form = {"MessageSid": "SM1", "MessageStatus": "failed"}
    code, _ = await gw.post(
        path, urlencode(form), {"Content-Type": FORM, "X-Twilio-Signature": "x"}
    )
    assert code == 403
    assert (await gw.stored(message["id"])).status == "sent"


async def test_a_signed_callback_moves_only_its_channels_message_with_its_sid(
    gateway, twilio_api
) -> None:
    gw: Gateway = await gateway(whatsapp(twilio_api), MOCK)
    ours = await gw.send(await _conversation(gw), "hi")
    await gw.final(ours["id"])
    body = '{"contact_id": "m", "message": "hello"}'
    assert (await gw.post(MOCK_URL, body, MOCK_HEADERS))[0] == 200
    [contact] = await gw.storage.contacts.collection.find({"external_id": "m"}).to_list()
    theirs = await gw.send(contact["_id"], "to the mock contact")
    assert (await gw.final(theirs["id"]))["status"] == "sent"
    # Signed by Twilio, but naming another channel's message, or another sid.
    assert await _status(gw, theirs["id"], "failed") == 200
    path = f"{PATH}status/?message_id={ours['id']}"
    form = {"MessageSid": "SMsomeoneelse", "MessageStatus": "failed", "AccountSid": ACCOUNT_SID}
    assert (await gw.post(path, urlencode(form), signed(form, path)))[0] == 200
    for message in (ours, theirs):
        assert (await gw.stored(message["id"])).status == "sent"


# label, form, the message's media as the API lists them
MEDIA = [
    ("text", inbound(), []),
    ("two images and a caption", inbound(body="see", NumMedia="2", MediaUrl0="https://api.twilio.com/m/1", MediaContentType0="image/jpeg", MediaUrl1="https://api.twilio.com/m/2", MediaContentType1="image/png"), [
        {"id": "0", "kind": "image", "mime_type": "image/jpeg", "size": None, "file_name": None, "caption": "see"},
        {"id": "1", "kind": "image", "mime_type": "image/png", "size": None, "file_name": None, "caption": "see"}]),
    ("a PDF", inbound(body="", NumMedia="1", MediaUrl0="https://api.twilio.com/m/3", MediaContentType0="application/pdf"), [
        {"id": "0", "kind": "document", "mime_type": "application/pdf", "size": None, "file_name": None, "caption": None}]),
    ("a voice note", inbound(body="", NumMedia="1", MediaUrl0="https://api.twilio.com/m/4", MediaContentType0="audio/ogg"), [
        {"id": "0", "kind": "audio", "mime_type": "audio/ogg", "size": None, "file_name": None, "caption": None}]),
    ("an unknown type", inbound(body="", NumMedia="1", MediaUrl0="https://api.twilio.com/m/5", MediaContentType0="model/gltf"), [
        {"id": "0", "kind": "other", "mime_type": "model/gltf", "size": None, "file_name": None, "caption": None}]),
    ("NumMedia past 10 reads 10", inbound(body="", NumMedia="99", **{f"MediaUrl{i}": f"https://api.twilio.com/m/{i}" for i in range(12)}, **{f"MediaContentType{i}": "image/jpeg" for i in range(12)}), [
        {"id": str(i), "kind": "image", "mime_type": "image/jpeg", "size": None, "file_name": None, "caption": None} for i in range(10)]),
    ("location", inbound(body="", Latitude="-23.5", Longitude="-46.6"), [
        {"id": "0", "kind": "location", "latitude": -23.5, "longitude": -46.6}]),
]  # fmt: skip


@pytest.mark.parametrize(("label", "form", "media"), MEDIA, ids=[c[0] for c in MEDIA])
async def test_incoming_media_are_listed_without_their_urls(
    gateway, twilio_api, label, form, media
) -> None:
    gw: Gateway = await gateway(whatsapp(twilio_api))
    assert (await gw.post(PATH, urlencode(form), signed(form)))[0] == 200
    listed = await gw.listed()
    assert [m["media"] for m in listed] == [media]
    assert "api.twilio.com" not in json.dumps(
        listed
    )  # fetched through the gateway, never handed out


async def test_a_location_that_is_not_a_number_is_refused_and_nothing_stored(
    gateway, twilio_api
) -> None:
    gw: Gateway = await gateway(whatsapp(twilio_api))
    for latitude in ("north", "nan", "inf"):
        form = inbound(body="", Latitude=latitude, Longitude="1")
        assert (await gw.post(PATH, urlencode(form), signed(form)))[0] == 400
    assert await gw.messages() == []


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 50


async def test_an_image_downloads_through_the_gateway_and_the_credentials_stay_with_twilio(
    gateway, twilio_api
) -> None:
    twilio_api.media["ME1"] = (PNG, "image/png")
    gw: Gateway = await gateway(whatsapp(twilio_api))
    form = inbound(
        body="", NumMedia="1", MediaUrl0=twilio_api.media_url("ME1"), MediaContentType0="image/png"
    )
    assert (await gw.post(PATH, urlencode(form), signed(form)))[0] == 200
    [message] = await gw.messages()
    response = await gw.download(f"/api/v1/messages/{message['_id']}/media/0/")
    assert (response.code, response.body) == (200, PNG)
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Disposition"].startswith('inline; filename="image-0.png"')
    assert AUTH_TOKEN not in str(list(response.headers.get_all()))
    api_call, storage_call = twilio_api.media_requests
    assert api_call["Authorization"].startswith("Basic ")
    assert "Authorization" not in storage_call  # the signed URL needs none, and gets none


async def test_media_urls_off_twilio_or_gone_are_404_and_fetch_nothing(gateway, twilio_api) -> None:
    gw: Gateway = await gateway(whatsapp(twilio_api))
    for sid, url in (
        ("SM1", "https://attacker.example/steal"),
        ("SM2", twilio_api.media_url("GONE")),
    ):
        form = inbound(sid, body="", NumMedia="1", MediaUrl0=url, MediaContentType0="image/png")
        assert (await gw.post(PATH, urlencode(form), signed(form)))[0] == 200
    off, gone = await gw.messages()
    response = await gw.download(f"/api/v1/messages/{off['_id']}/media/0/")
    assert response.code == 404
    assert "not a Twilio media URL" in response.body.decode()
    assert twilio_api.media_requests == []  # the credentials went nowhere
    response = await gw.download(f"/api/v1/messages/{gone['_id']}/media/0/")
    assert response.code == 404
    assert "no longer has this file" in response.body.decode()


async def test_free_form_text_outside_the_24_hour_window_is_refused_until_the_contact_writes(
    gateway, twilio_api, storage
) -> None:
    first: Gateway = await gateway(whatsapp(twilio_api))
    contact_id = await _conversation(first)
    _, contact = await first.agent.fetch("GET", f"/api/v1/contacts/{contact_id}/")
    opened = datetime.fromisoformat(contact["last_message_at"])
    assert datetime.fromisoformat(contact["window_expires_at"]) == opened + timedelta(hours=24)
    [conversation] = (await first.agent.fetch("GET", "/api/v1/conversations/"))[1]["results"]
    shown = datetime.fromisoformat(conversation["window_expires_at"])  # from its last inbound
    assert abs(shown - (opened + timedelta(hours=24))) < timedelta(seconds=2)

    # 25 hours on: the stored contact last wrote then, and a gateway reads it afresh.
    ago = datetime.now(UTC) - timedelta(hours=25)
    await storage.contacts.collection.update_one(
        {"_id": contact_id}, {"$set": {"last_message_at": ago}}
    )
    await storage.conversations.collection.update_one(
        {"_id": conversation["id"]}, {"$set": {"last_inbound_at": ago}}
    )
    later: Gateway = await gateway(whatsapp(twilio_api))
    status, refused = await later.agent.fetch(
        "POST", "/api/v1/messages/", json_body={"contact_id": contact_id, "content": "Still there?"}
    )
    assert status == 409, refused
    assert refused["error"]["code"] == "window_closed"
    assert "template" in refused["error"]["message"]
    assert [m["direction"] for m in await later.messages()] == ["in"]  # nothing stored
    _, contact = await later.agent.fetch("GET", f"/api/v1/contacts/{contact_id}/")
    assert datetime.fromisoformat(contact["window_expires_at"]) < datetime.now(UTC)
    _, conversation = await later.agent.fetch("GET", f"/api/v1/conversations/{conversation['id']}/")
    assert datetime.fromisoformat(conversation["window_expires_at"]) < datetime.now(UTC)

    # At the same moment an approved template goes, through Twilio's Content API.
    template = {"content_sid": SID, "variables": {"1": "Zé", "2": "order 42"}}
    status, sent = await later.agent.fetch(
        "POST", "/api/v1/messages/", json_body={"contact_id": contact_id, "template": template}
    )
    assert status == 201, sent
    assert sent["template"] == template
    assert (await later.final(sent["id"]))["status"] == "sent"
    [request] = twilio_api.sent
    assert (request["ContentSid"], json.loads(request["ContentVariables"])) == (
        SID,
        template["variables"],
    )
    assert "Body" not in request

    form = inbound("SM900", "I'm back")  # the contact writes: the window opens again
    assert (await later.post(PATH, urlencode(form), signed(form)))[0] == 200
    _, conversation = await later.agent.fetch("GET", f"/api/v1/conversations/{conversation['id']}/")
    assert datetime.fromisoformat(conversation["window_expires_at"]) > datetime.now(UTC)
    message = await later.send(contact_id, "Welcome back")
    assert (await later.final(message["id"]))["status"] == "sent"


SID = "HX" + "0123456789abcdef" * 2

# label, body (contact_id added), why it is refused
BAD_SENDS = [
    ("content and template", {"content": "hi", "template": {"content_sid": SID}}, "template alone"),
    ("neither", {}, "send content, media_url or template"),
    ("not a Content SID", {"template": {"content_sid": "HXnope"}}, "Content SID"),
    ("a variable too long", {"template": {"content_sid": SID, "variables": {"1": "x" * 1025}}}, "variables"),
]  # fmt: skip


@pytest.mark.parametrize(("label", "body", "said"), BAD_SENDS, ids=[c[0] for c in BAD_SENDS])
async def test_a_malformed_template_send_is_a_400_and_stores_nothing(
    gateway, twilio_api, label, body, said
) -> None:
    gw: Gateway = await gateway(whatsapp(twilio_api))
    contact_id = await _conversation(gw)
    status, answer = await gw.agent.fetch(
        "POST", "/api/v1/messages/", json_body={"contact_id": contact_id, **body}
    )
    assert status == 400, answer
    assert said in json.dumps(answer)
    assert [m["direction"] for m in await gw.messages()] == ["in"]


async def test_media_over_the_cap_is_a_413_and_the_file_is_not_read(gateway, twilio_api) -> None:
    twilio_api.media["BIG"] = (b"x" * 5_000, "video/mp4")
    gw: Gateway = await gateway(whatsapp(twilio_api), media=MediaConfig(max_bytes=1_000))
    form = inbound(
        body="", NumMedia="1", MediaUrl0=twilio_api.media_url("BIG"), MediaContentType0="video/mp4"
    )
    assert (await gw.post(PATH, urlencode(form), signed(form)))[0] == 200
    [message] = await gw.messages()
    response = await gw.download(f"/api/v1/messages/{message['_id']}/media/0/")
    assert response.code == 413
    assert "1000-byte limit" in json.loads(response.body)["error"]["message"]


def _content(n: int, status: str = "approved") -> dict[str, Any]:
    return {"sid": f"HX{n:032x}", "friendly_name": f"order_update_{n}", "language": "pt_BR",
            "variables": {"1": "name"}, "types": {"twilio/text": {"body": "Olá {{1}}"}},
            "approval_requests": {"status": status}}  # fmt: skip


async def test_a_channels_templates_are_listed_from_twilio_and_kept_a_minute(
    gateway, twilio_api
) -> None:
    twilio_api.contents = [_content(n) for n in range(3)] + [_content(3, "rejected")]
    twilio_api.content_page_size = 3  # two pages, followed
    config = whatsapp(twilio_api)
    config.settings["content_api_base"] = twilio_api.base_url
    gw: Gateway = await gateway(config)
    [channel] = [
        c
        for c in (await gw.agent.fetch("GET", "/api/v1/channels/"))[1]["results"]
        if c["type"] == "whatsapp"
    ]
    for _ in range(2):
        status, listed = await gw.agent.fetch("GET", f"/api/v1/channels/{channel['id']}/templates/")
        assert status == 200, listed
    assert [t["content_sid"] for t in listed["results"]] == [f"HX{n:032x}" for n in range(4)]
    assert listed["results"][0] == {
        "content_sid": f"HX{0:032x}",
        "name": "order_update_0",
        "language": "pt_BR",
        "variables": {"1": "name"},
        "types": ["twilio/text"],
        "whatsapp_status": "approved",
    }
    assert listed["results"][3]["whatsapp_status"] == "rejected"
    assert twilio_api.content_calls == 2  # two pages once; the second listing came from memory
    assert AUTH_TOKEN not in json.dumps(listed)


async def test_templates_of_a_channel_without_them_or_refused_credentials(
    gateway, twilio_api, telegram_api
) -> None:
    from tests.channels.test_telegram import telegram

    config = whatsapp(twilio_api)
    config.settings["content_api_base"] = twilio_api.base_url
    config.settings["auth_token"] = "wrong-token-0001"
    gw: Gateway = await gateway(config, telegram(telegram_api))
    _, page = await gw.agent.fetch("GET", "/api/v1/channels/")
    ids = {c["type"]: c["id"] for c in page["results"]}
    status, answer = await gw.agent.fetch("GET", f"/api/v1/channels/{ids['telegram']}/templates/")
    assert (status, answer["error"]["code"]) == (404, "not_found")
    status, answer = await gw.agent.fetch("GET", f"/api/v1/channels/{ids['whatsapp']}/templates/")
    assert (status, answer["error"]["code"]) == (502, "bad_gateway")
    assert "credentials" in answer["error"]["message"]
