"""Telegram through the real aiogram client against a fake Bot API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from channels.telegram import SECRET_HEADER
from gateway.config import ChannelConfig, MediaConfig
from storage.database import Storage
from testkit.fakes.script import DROP, Fail
from testkit.fakes.telegram import TOKEN, FakeBotAPI, make_update
from testkit.helpers import async_wait_until
from testkit.processes import BOT_GATEWAY
from tests.channels.conftest import FAST_RETRIES, REPLY, Gateway, Outgoing, outgoing_cases

HOOK_SECRET = "hook-secret"
URL = "/webhooks/telegram/tg/"


def telegram(api: FakeBotAPI, mode: str = "webhook", **settings: Any) -> ChannelConfig:
    return ChannelConfig(
        name="tg",
        type="telegram",
        settings={
            "token": TOKEN,
            "mode": mode,
            "webhook_secret": HOOK_SECRET,
            "api_base": api.base_url,
            "seconds_between_messages_to_a_chat": 0,
            **settings,
        },
    )


def update(text: str | None = "hi", update_id: int = 1, **extra: Any) -> dict[str, Any]:
    return make_update(update_id, 42, text, "Zé", "ze", **extra)


SIGNED = {SECRET_HEADER: HOOK_SECRET, "Content-Type": "application/json"}

# label, body, headers, expected status, expected stored text (None: nothing stored)
INCOMING = [
    ("text", update("Olá"), SIGNED, 200, "Olá"),
    ("no secret", update(), {"Content-Type": "application/json"}, 401, None),
    ("wrong secret", update(), {**SIGNED, SECRET_HEADER: "forged"}, 401, None),
    ("photo", update(None, photo=[{"file_id": "F1", "file_unique_id": "u", "width": 1, "height": 1}], caption="look"), SIGNED, 200, "[photo] look"),
    ("sticker", update(None, sticker={"file_id": "S1", "file_unique_id": "u", "type": "regular", "width": 1, "height": 1, "is_animated": False, "is_video": False, "emoji": "😀"}), SIGNED, 200, "[sticker 😀]"),
    ("voice", update(None, voice={"file_id": "V1", "file_unique_id": "u", "duration": 3}), SIGNED, 200, "[voice message, 3 s]"),
    ("location", update(None, location={"latitude": -23.5, "longitude": -46.6}), SIGNED, 200, "[location -23.5, -46.6]"),
    ("edited", {"update_id": 9, "edited_message": update("fixed")["message"]}, SIGNED, 200, "[edited] fixed"),
    ("not a message", {"update_id": 9, "my_chat_member": None}, SIGNED, 200, None),
    ("empty object", {}, SIGNED, 400, None),
    ("wrong types", {"update_id": "x", "message": 5}, SIGNED, 400, None),
    ("missing chat", {"update_id": 3, "message": {"message_id": 1, "date": 1, "text": "x"}}, SIGNED, 400, None),
    ("not json", "update_id=1", SIGNED, 400, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "body", "headers", "status", "text"), INCOMING, ids=[c[0] for c in INCOMING]
)
async def test_incoming(gateway, telegram_api, label, body, headers, status, text) -> None:
    gw: Gateway = await gateway(telegram(telegram_api))
    raw = body if isinstance(body, str) else json.dumps(body)
    code, answer = await gw.post(URL, raw, headers)
    assert code == status, answer
    stored = await gw.messages()
    assert [m["content"] for m in stored] == ([text] if text else [])
    if text:
        [contact] = await gw.storage.contacts.collection.find().to_list()
        assert (contact["external_id"], contact["name"], contact["username"]) == ("42", "Zé", "ze")
    else:
        assert await gw.storage.contacts.collection.count_documents({}) == 0


async def test_webhook_mode_registers_itself_with_the_secret(gateway, telegram_api) -> None:
    await gateway(telegram(telegram_api))

    async def registered() -> bool:
        return bool(telegram_api.webhook)

    await async_wait_until(registered, 10, "setWebhook")
    assert telegram_api.webhook["url"] == "https://gw.example.com/webhooks/telegram/tg/"
    assert telegram_api.webhook["secret_token"] == HOOK_SECRET
    assert json.loads(telegram_api.webhook["allowed_updates"]) == ["message", "edited_message"]


async def test_the_same_update_twice_is_one_message_and_renames_keep_one_contact(
    gateway, telegram_api
) -> None:
    gw: Gateway = await gateway(telegram(telegram_api))
    first = make_update(500, 42, "hi", "Zé")
    renamed = make_update(501, 42, "again", "José")
    for body in (first, first, renamed):
        assert (await gw.post(URL, json.dumps(body), SIGNED))[0] == 200
    assert [m["content"] for m in await gw.messages()] == ["hi", "again"]
    [contact] = await gw.storage.contacts.collection.find().to_list()
    assert contact["name"] == "José"


async def test_polling_three_users_become_contacts_and_replies_reach_their_chats(
    gateway, telegram_api
) -> None:
    gw: Gateway = await gateway(telegram(telegram_api, mode="polling"))
    users = {101: "Ana", 102: "Bruno", 103: "Carla"}
    for user_id, name in users.items():
        telegram_api.user_writes(user_id, f"oi, sou {name}", first_name=name)

    async def three_contacts() -> bool:
        status, page = await gw.agent.fetch("GET", "/api/v1/contacts/")
        return status == 200 and len(page["results"]) == 3

    await async_wait_until(three_contacts, 15, "three contacts from getUpdates")
    _, contacts = await gw.agent.fetch("GET", "/api/v1/contacts/")
    assert sorted(c["name"] for c in contacts["results"]) == sorted(users.values())
    for contact in contacts["results"]:
        _, page = await gw.agent.fetch("GET", f"/api/v1/messages/?contact_id={contact['id']}")
        assert [m["content"] for m in page["results"]] == [f"oi, sou {contact['name']}"]
        reply = await gw.send(contact["id"], f"Olá {contact['name']}!")
        sent = await gw.final(reply["id"])
        assert sent["status"] == "sent"
        assert telegram_api.sent_to(int(contact["external_id"])) == [f"Olá {contact['name']}!"]
    # The offset moved on: the stored updates were confirmed and not delivered again.
    assert telegram_api.updates == [] or all(u["update_id"] > 1002 for u in telegram_api.updates)
    assert len(await gw.messages(direction="in")) == 3


OUTGOING = [
    Outgoing("sent", []),
    Outgoing("two network failures, then sent", [DROP, DROP], attempts=3),
    Outgoing("server errors past the limit", [Fail(502, message="Bad Gateway")] * 3, "failed", 3, "Bad Gateway"),
    Outgoing("blocked by the user", [Fail(403, message="Forbidden: bot was blocked by the user")], "failed", 1, "bot was blocked by the user"),
    Outgoing("chat not found", [Fail(400, message="Bad Request: chat not found")], "failed", 1, "chat not found"),
    Outgoing("bad token", [Fail(401, message="Unauthorized")], "failed", 1, "Unauthorized"),
]  # fmt: skip


@outgoing_cases(OUTGOING)
async def test_outgoing(gateway, telegram_api, case: Outgoing) -> None:
    gw: Gateway = await gateway(telegram(telegram_api))
    await gw.post(URL, json.dumps(update("hi")), SIGNED)
    [inbound] = await gw.messages()
    final = await gw.deliver(telegram_api, inbound["contact_id"], case)
    if case.status == "sent":
        assert final["external_id"]
        assert telegram_api.sent_to(42) == [REPLY]


async def test_429_retry_after_is_honoured(gateway, telegram_api) -> None:
    gw: Gateway = await gateway(telegram(telegram_api))
    await gw.post(URL, json.dumps(update("hi")), SIGNED)
    [inbound] = await gw.messages()
    telegram_api.send_script = [Fail(429, retry_after=2)]
    started = time.monotonic()
    message = await gw.send(inbound["contact_id"], "hello")
    final = await gw.final(message["id"], within=15)
    assert (final["status"], final["attempts"]) == ("sent", 1)  # a flood wait is no attempt
    [sent] = telegram_api.sent
    assert sent.at - started >= 2.0


async def test_messages_to_one_chat_keep_their_order_and_pace(gateway, telegram_api) -> None:
    gw: Gateway = await gateway(
        telegram(telegram_api, seconds_between_messages_to_a_chat=0.2),
        delivery=FAST_RETRIES,
    )
    await gw.post(URL, json.dumps(update("hi")), SIGNED)
    [inbound] = await gw.messages()
    telegram_api.send_script = ["ok", DROP]  # the second one needs a retry
    ids = [(await gw.send(inbound["contact_id"], f"m{i}"))["id"] for i in range(4)]
    for message_id in ids:
        assert (await gw.final(message_id))["status"] == "sent"
    assert telegram_api.sent_to(42) == ["m0", "m1", "m2", "m3"]
    gaps = [b.at - a.at for a, b in zip(telegram_api.sent, telegram_api.sent[1:], strict=False)]
    assert min(gaps) >= 0.19


async def test_polling_survives_telegram_being_unreachable_at_start(gateway, telegram_api) -> None:
    telegram_api.down = True
    gw: Gateway = await gateway(telegram(telegram_api, mode="polling"))
    telegram_api.user_writes(101, "are you there?")

    async def retried() -> bool:
        return telegram_api.calls.count("getUpdates") >= 2

    await async_wait_until(retried, 15, "getUpdates to be retried")
    assert await gw.messages() == []
    telegram_api.down = False

    async def stored() -> bool:
        return len(await gw.messages()) == 1

    await async_wait_until(stored, 15, "the update once Telegram is back")


async def test_a_client_error_quoting_the_token_is_told_without_it(gateway, telegram_api) -> None:
    # aiohttp names the URL in some errors, and the Bot API's URL carries the token.
    gw: Gateway = await gateway(telegram(telegram_api, mode="polling"))
    telegram_api.user_writes(42, "hi")

    async def stored() -> bool:
        return len(await gw.messages()) == 1

    await async_wait_until(stored, 15, "the update")
    telegram_api.redirecting = True
    polled = telegram_api.calls.count("getUpdates")

    async def failed_twice() -> bool:  # each failed poll follows 10 redirects
        return telegram_api.calls.count("getUpdates") >= polled + 22

    await async_wait_until(failed_twice, 15, "getUpdates to fail twice")
    [inbound] = await gw.messages()
    final = await gw.final((await gw.send(inbound["contact_id"], REPLY))["id"])
    assert final["status"] == "failed"
    assert "TooManyRedirects" in final["error"]
    assert TOKEN.split(":")[1] not in final["error"]
    # and no log line holds it: the no_secret_in_logs fixture checks every record


async def test_two_bots_side_by_side(gateway, telegram_api) -> None:
    second = ChannelConfig(
        name="tg2",
        type="telegram",
        settings={**telegram(telegram_api).settings, "webhook_secret": "hook-secret-2"},
    )
    gw: Gateway = await gateway(telegram(telegram_api), second)
    hook = json.dumps(update("to bot one"))
    assert (await gw.post(URL, hook, SIGNED))[0] == 200
    other = {**SIGNED, SECRET_HEADER: "hook-secret-2"}
    assert (await gw.post("/webhooks/telegram/tg2/", json.dumps(update("to bot two")), other))[
        0
    ] == 200
    # Each bot's secret opens only its own webhook.
    assert (await gw.post("/webhooks/telegram/tg2/", hook, SIGNED))[0] == 401
    contacts = await gw.storage.contacts.collection.find().to_list()
    assert len({c["channel_id"] for c in contacts}) == 2  # one chat id, two bots: two contacts
    for contact in contacts:
        reply = await gw.send(contact["_id"], f"from {contact['channel_id']}")
        assert (await gw.final(reply["id"]))["status"] == "sent"
    assert len(telegram_api.sent_to(42)) == 2


def _config_of(channel: ChannelConfig, tmp_path: Path, mongo_uri: str, storage: Storage) -> Path:
    """A config as the operator's, on the test's database (one the gateway may share):
    the command then starts no embedded server of its own, which test_serve covers."""
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "data_dir": str(tmp_path / "data"),
                "server": {"public_url": "https://gw.example.com"},
                "storage": {"uri": mongo_uri, "database": storage.db.name},
                "channels": [{"name": channel.name, "type": channel.type, **channel.settings}],
            }
        )
    )
    return config


async def _run(*args: str) -> tuple[int, str, str]:
    """The installed ``bot-gateway`` command, as an operator runs it."""
    process = await asyncio.create_subprocess_exec(
        BOT_GATEWAY, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_set_webhook_command_registers_the_bot(
    telegram_api, tmp_path, mongo_uri, storage
) -> None:
    config = _config_of(telegram(telegram_api), tmp_path, mongo_uri, storage)
    code, out, err = await _run("set-webhook", "--config", str(config))
    assert code == 0, err
    assert out.strip().endswith("webhook set to https://gw.example.com/webhooks/telegram/tg/")
    assert telegram_api.webhook["url"] == "https://gw.example.com/webhooks/telegram/tg/"
    assert telegram_api.webhook["secret_token"] == HOOK_SECRET


async def test_switching_from_webhook_to_polling_takes_delete_webhook(
    gateway, telegram_api, tmp_path, caplog, mongo_uri
) -> None:
    # The bot was served by webhook; now its config says polling. Telegram answers
    # getUpdates with 409 until the webhook is deleted, and the log says how.
    telegram_api.webhook = {"url": "https://old.example.com/hook"}
    polling = telegram(telegram_api, mode="polling")
    gw: Gateway = await gateway(polling)
    telegram_api.user_writes(77, "still there?")

    async def refused_twice() -> bool:
        return telegram_api.calls.count("getUpdates") >= 2

    await async_wait_until(refused_twice, 15, "getUpdates to be refused and retried")
    assert await gw.messages() == []
    assert "bot-gateway delete-webhook" in caplog.text

    config = str(_config_of(polling, tmp_path, mongo_uri, gw.storage))
    code, out, err = await _run("delete-webhook", "--config", config, "--channel", "nope")
    assert (code, err.splitlines()[-1]) == (
        1,
        "bot-gateway: error: no telegram channel named nope",
    )
    assert telegram_api.webhook != {}
    code, out, err = await _run("delete-webhook", "--config", config, "--channel", "tg")
    assert (code, out.strip()) == (0, "telegram channel tg: webhook deleted"), err
    assert telegram_api.webhook == {}

    async def stored() -> bool:
        return [m["content"] for m in await gw.messages()] == ["still there?"]

    await async_wait_until(stored, 30, "the update kept while the webhook was active")


_MOCK = ChannelConfig(name="mock", type="mock", settings={"secret": "s"})
_POLLING = ChannelConfig(name="tg", type="telegram", settings={"token": TOKEN, "mode": "polling"})
_NO_TOKEN = ChannelConfig(name="tg", type="telegram", settings={"token": "", "mode": "webhook"})


@pytest.mark.parametrize(
    ("command", "channel", "error"),
    [
        ("delete-webhook", _MOCK, "no telegram channel"),
        (
            "set-webhook",
            _POLLING,
            "no telegram channel in webhook mode: set TELEGRAM_MODE=webhook (channels[].mode)",
        ),
        (
            "set-webhook",
            _NO_TOKEN,
            "channel tg: token not set (TELEGRAM_BOT_TOKEN is the default telegram channel's "
            "token)",
        ),
    ],
    ids=["mock only", "polling", "no token"],
)
async def test_webhook_commands_say_why_they_act_on_no_channel(
    command, channel, error, tmp_path, mongo_uri, storage
) -> None:
    config = _config_of(channel, tmp_path, mongo_uri, storage)
    code, out, err = await _run(command, "--config", str(config))
    assert (code, out) == (1, "")
    assert err.splitlines()[-1] == f"bot-gateway: error: {error}"
    if channel is _NO_TOKEN:
        assert "channel 'tg' (telegram) is off: token not set" in err


def test_version_is_the_installed_packages() -> None:
    done = subprocess.run([BOT_GATEWAY, "--version"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, f"bot-gateway {version('bot-gateway')}")


def _file(file_id: str, **more: Any) -> dict[str, Any]:
    return {"file_id": file_id, "file_unique_id": "u" + file_id, **more}


def _listed(
    kind: str,
    mime_type: str | None,
    size: int | None = None,
    file_name: str | None = None,
    caption: str | None = None,
) -> dict[str, Any]:
    return {
        "id": "0",
        "kind": kind,
        "mime_type": mime_type,
        "size": size,
        "file_name": file_name,
        "caption": caption,
    }


# label, update, the message's media as the API lists them
MEDIA = [
    ("photo: the largest size", update(None, photo=[_file("small", width=90, height=90, file_size=900), _file("large", width=1280, height=1280, file_size=90_000)], caption="look"), [_listed("photo", "image/jpeg", 90_000, caption="look")]),
    ("document", update(None, document=_file("D1", file_name="invoice.pdf", mime_type="application/pdf", file_size=12_345)), [_listed("document", "application/pdf", 12_345, "invoice.pdf")]),
    ("voice", update(None, voice=_file("V1", duration=3, mime_type="audio/ogg", file_size=4_000)), [_listed("voice", "audio/ogg", 4_000)]),
    ("audio", update(None, audio=_file("A1", duration=200, mime_type="audio/mpeg", file_name="song.mp3")), [_listed("audio", "audio/mpeg", file_name="song.mp3")]),
    ("video", update(None, video=_file("VD1", width=1, height=1, duration=5, mime_type="video/mp4"), caption="clip"), [_listed("video", "video/mp4", caption="clip")]),
    ("video note", update(None, video_note=_file("VN1", length=240, duration=5)), [_listed("video_note", "video/mp4")]),
    ("sticker", update(None, sticker=_file("S1", type="regular", width=1, height=1, is_animated=False, is_video=False, emoji="😀")), [_listed("sticker", "image/webp")]),
    ("animation", update(None, animation=_file("G1", width=1, height=1, duration=2, mime_type="video/mp4", file_name="cat.mp4")), [_listed("animation", "video/mp4", file_name="cat.mp4")]),
    ("location", update(None, location={"latitude": -23.5, "longitude": -46.6}), [{"id": "0", "kind": "location", "latitude": -23.5, "longitude": -46.6}]),
    ("contact", update(None, contact={"phone_number": "+5511988887777", "first_name": "Ana", "last_name": "Lima"}), [{"id": "0", "kind": "contact", "phone_number": "+5511988887777", "file_name": "Ana Lima"}]),
    ("unknown kind: other", update(None, dice={"emoji": "🎲", "value": 4}), [{"id": "0", "kind": "other", "caption": None}]),
    ("text", update("plain"), []),
]  # fmt: skip


@pytest.mark.parametrize(("label", "body", "media"), MEDIA, ids=[c[0] for c in MEDIA])
async def test_incoming_media_are_listed_without_their_file_ids(
    gateway, telegram_api, label, body, media
) -> None:
    gw: Gateway = await gateway(telegram(telegram_api))
    assert (await gw.post(URL, json.dumps(body), SIGNED))[0] == 200
    listed = await gw.listed()
    assert [m["media"] for m in listed] == [media]
    for file_id in ("large", "small", "D1", "V1", "A1", "VD1", "VN1", "S1", "G1"):
        assert f'"{file_id}"' not in json.dumps(listed)  # opened only with the bot's token


async def test_a_location_that_is_not_a_number_is_refused(gateway, telegram_api) -> None:
    gw: Gateway = await gateway(telegram(telegram_api))
    body = update(None, location={"latitude": "north", "longitude": 1})
    assert (await gw.post(URL, json.dumps(body), SIGNED))[0] == 400
    assert await gw.messages() == []


JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9"
OGG = b"OggS" + b"\x00voice" * 500
PDF = b"%PDF-1.7\n" + b"invoice lines\n" * 300 + b"%%EOF"

# label, the update's media field, the file, its type, the Content-Disposition's start
DOWNLOADS = [
    ("photo", {"photo": [_file("small", width=9, height=9), _file("P1", width=900, height=900)]}, "P1", JPEG, "image/jpeg", 'inline; filename="photo-0.jpg"'),
    ("voice note", {"voice": _file("V1", duration=3, mime_type="audio/ogg")}, "V1", OGG, "audio/ogg", 'attachment; filename="voice-0.'),
    ("document", {"document": _file("D1", file_name="fatura março.pdf", mime_type="application/pdf")}, "D1", PDF, "application/pdf", "attachment; filename=\"fatura mar_o.pdf\"; filename*=UTF-8''fatura%20mar%C3%A7o.pdf"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "fields", "file_id", "body", "mime_type", "shown_as"),
    DOWNLOADS,
    ids=[c[0] for c in DOWNLOADS],
)
async def test_a_contacts_file_downloads_byte_for_byte_and_never_shows_the_token(
    gateway, telegram_api, label, fields, file_id, body, mime_type, shown_as
) -> None:
    telegram_api.files[file_id] = (body, "application/octet-stream")  # as Telegram serves them
    gw: Gateway = await gateway(telegram(telegram_api))
    assert (await gw.post(URL, json.dumps(update(None, **fields)), SIGNED))[0] == 200
    [message] = listed = await gw.listed()
    [media] = message["media"]
    response = await gw.download(f"/api/v1/messages/{message['id']}/media/{media['id']}/")
    assert response.code == 200
    assert response.body == body
    assert response.headers["Content-Type"] == mime_type
    assert response.headers["Content-Disposition"].startswith(shown_as)
    assert response.headers["Content-Security-Policy"] == "sandbox"
    everything = str(list(response.headers.get_all())) + json.dumps(listed)
    assert TOKEN not in everything
    assert TOKEN.split(":")[0] not in everything  # not even the bot's id half
    assert telegram_api.file_downloads == 1


async def test_a_file_over_the_cap_or_gone_or_unknown_is_a_clear_error(
    gateway, telegram_api
) -> None:
    telegram_api.files["BIG"] = (b"x" * 2_000, "application/octet-stream")
    gw: Gateway = await gateway(telegram(telegram_api), media=MediaConfig(max_bytes=1_000))
    for file_id in ("BIG", "GONE"):
        body = update(None, document=_file(file_id, file_name="a.bin"), update_id=len(file_id))
        assert (await gw.post(URL, json.dumps(body), SIGNED))[0] == 200
    [gone, big] = await gw.listed()
    cases = [
        (f"/api/v1/messages/{big['id']}/media/0/", 413, "1000-byte limit"),
        (f"/api/v1/messages/{gone['id']}/media/0/", 404, "no longer has this file"),
        (f"/api/v1/messages/{big['id']}/media/1/", 404, "No such file"),
        (f"/api/v1/messages/{big['id']}/media/x/", 404, "No such file"),
        ("/api/v1/messages/nope/media/0/", 404, "No such file"),
    ]
    for path, status, said in cases:
        response = await gw.download(path)
        assert response.code == status, path
        assert said in json.loads(response.body)["error"]["message"]
        assert TOKEN not in response.body.decode()
    assert telegram_api.file_downloads == 0  # the size getFile gave was enough to refuse
    anonymous = await gw.anonymous.http.fetch(
        gw.anonymous.base_url + f"/api/v1/messages/{big['id']}/media/0/", raise_error=False
    )
    assert anonymous.code == 401


async def test_a_template_to_a_telegram_contact_is_refused(gateway, telegram_api) -> None:
    gw: Gateway = await gateway(telegram(telegram_api))
    assert (await gw.post(URL, json.dumps(update()), SIGNED))[0] == 200
    [inbound] = await gw.messages()
    template = {"content_sid": "HX" + "0" * 32}
    status, answer = await gw.agent.fetch(
        "POST",
        "/api/v1/messages/",
        json_body={"contact_id": inbound["contact_id"], "template": template},
    )
    assert status == 400
    assert "sends no templates" in answer["error"]["message"]
    assert len(await gw.messages()) == 1
