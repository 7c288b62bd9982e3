"""Agents send files: uploaded (multipart) or by URL, to Telegram and WhatsApp.

The real aiogram and twilio clients talk to the fakes; the fake Bot API receives an
upload's bytes or fetches a URL as Telegram does, and the fake Twilio fetches every
MediaUrl (HEAD, then GET) as Twilio does: an upload from the gateway's own signed,
expiring link.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from channels.telegram import SECRET_HEADER
from gateway.config import MediaConfig
from testkit.fakes.graph import signature, text_message, webhook
from testkit.fakes.local import FileHost
from testkit.fakes.twilio import sign
from testkit.helpers import multipart
from tests.channels.conftest import MOCK, MOCK_HEADERS, MOCK_URL, PUBLIC_URL, Gateway
from tests.channels.test_telegram import HOOK_SECRET, telegram, update
from tests.channels.test_telegram import URL as TELEGRAM_URL
from tests.channels.test_whatsapp import FORM, inbound, whatsapp
from tests.channels.test_whatsapp import PATH as WHATSAPP_URL
from tests.channels.test_whatsapp_cloud import PATH as CLOUD_URL
from tests.channels.test_whatsapp_cloud import cloud

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 64 + b"\xff\xd9"
PDF = b"%PDF-1.7\n" + b"invoice lines\n" * 400 + b"%%EOF"
OGG = b"OggS" + b"\x00voice" * 600
MP4 = b"\x00\x00\x00\x18ftypisom" + b"\x00frames" * 600
MB = 1024 * 1024


@pytest.fixture
async def file_host() -> AsyncIterator[FileHost]:
    host = await FileHost().start()
    yield host
    await host.stop()


async def telegram_contact(gw: Gateway) -> str:
    headers = {SECRET_HEADER: HOOK_SECRET, "Content-Type": "application/json"}
    assert (await gw.post(TELEGRAM_URL, json.dumps(update("send me the invoice")), headers))[
        0
    ] == 200
    return str((await gw.messages())[0]["contact_id"])


async def whatsapp_contact(gw: Gateway, public_url: str) -> str:
    form = inbound("SM1", "send me the invoice")
    # Twilio signs the URL it calls: ours, or where it reaches this gateway without one.
    url = (public_url or gw.anonymous.base_url) + WHATSAPP_URL
    headers = {"Content-Type": FORM, "X-Twilio-Signature": sign(url, form)}
    assert (await gw.post(WHATSAPP_URL, urlencode(form), headers))[0] == 200
    return str((await gw.messages())[0]["contact_id"])


async def upload(
    gw: Gateway, contact_id: str, name: str, data: bytes, mime_type: str, **fields: str
) -> tuple[int, Any]:
    body, content_type = multipart(
        {"contact_id": contact_id, **fields}, [("file", name, data, mime_type)]
    )
    return await gw.agent.fetch(
        "POST", "/api/v1/messages/", body=body, headers={"Content-Type": content_type, **fields}
    )


async def by_url(gw: Gateway, contact_id: str, url: str, **more: str) -> tuple[int, Any]:
    body = {"contact_id": contact_id, "media_url": url, **more}
    return await gw.agent.fetch("POST", "/api/v1/messages/", json_body=body)


@dataclass(frozen=True)
class FileSend:
    """One row: a file sent to a channel's contact, and how it must arrive."""

    label: str
    channel: str  # telegram | whatsapp
    how: str  # upload | url
    name: str
    data: bytes
    mime_type: str
    arrives_as: str  # the Bot API method, or the Content-Type Twilio fetched


FILE_SENDS = [
    FileSend("telegram jpeg upload", "telegram", "upload", "photo.jpg", JPEG, "image/jpeg", "sendPhoto"),
    FileSend("telegram pdf by url", "telegram", "url", "invoice.pdf", PDF, "application/pdf", "sendDocument"),
    FileSend("telegram voice upload", "telegram", "upload", "note.ogg", OGG, "audio/ogg", "sendVoice"),
    FileSend("telegram video upload", "telegram", "upload", "clip.mp4", MP4, "video/mp4", "sendVideo"),
    FileSend("telegram pdf upload", "telegram", "upload", "invoice.pdf", PDF, "application/pdf", "sendDocument"),
    FileSend("whatsapp jpeg upload", "whatsapp", "upload", "photo.jpg", JPEG, "image/jpeg", "image/jpeg"),
    FileSend("whatsapp pdf by url", "whatsapp", "url", "invoice.pdf", PDF, "application/pdf", "application/pdf"),
    FileSend("whatsapp pdf upload", "whatsapp", "upload", "invoice.pdf", PDF, "application/pdf", "application/pdf"),
    FileSend("cloud jpeg upload", "whatsapp_cloud", "upload", "photo.jpg", JPEG, "image/jpeg", "image"),
    FileSend("cloud pdf by url", "whatsapp_cloud", "url", "invoice.pdf", PDF, "application/pdf", "document"),
    FileSend("cloud voice upload", "whatsapp_cloud", "upload", "note.ogg", OGG, "audio/ogg", "audio"),
]  # fmt: skip


async def cloud_contact(gw: Gateway) -> str:
    body = json.dumps(webhook(messages=(text_message(body="send me the invoice"),))).encode()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature(body)}
    assert (await gw.post(CLOUD_URL, body, headers))[0] == 200
    return str((await gw.messages())[0]["contact_id"])


@pytest.fixture
def start(gateway, telegram_api, twilio_api, graph_api) -> Any:
    """A gateway with the Telegram, the WhatsApp (Twilio) or the Cloud API channel,
    and a contact who wrote."""

    async def begin(channel: str, **sections: Any) -> tuple[Gateway, str]:
        if channel == "telegram":
            gw: Gateway = await gateway(telegram(telegram_api), **sections)
            return gw, await telegram_contact(gw)
        if channel == "whatsapp_cloud":
            gw = await gateway(cloud(graph_api), **sections)
            graph_api.hosts[PUBLIC_URL] = gw.anonymous.base_url  # Meta fetches our links
            return gw, await cloud_contact(gw)
        gw = await gateway(whatsapp(twilio_api), **sections)
        twilio_api.hosts[PUBLIC_URL] = gw.anonymous.base_url  # Twilio reaches our public URL
        return gw, await whatsapp_contact(gw, sections.get("public_url", PUBLIC_URL))

    return begin


@pytest.mark.parametrize("case", FILE_SENDS, ids=[c.label for c in FILE_SENDS])
async def test_a_file_an_agent_sends_arrives_byte_for_byte(
    start, telegram_api, twilio_api, graph_api, file_host, case: FileSend
) -> None:
    gw, contact_id = await start(case.channel)
    if case.how == "upload":
        status, message = await upload(gw, contact_id, case.name, case.data, case.mime_type,
                                       content="here it is")  # fmt: skip
    else:
        url = file_host.add(f"/files/{case.name}", case.data, case.mime_type)
        status, message = await by_url(gw, contact_id, url, content="here it is")
    assert status == 201, message
    assert (message["status"], message["content"]) == ("queued", "here it is")
    [media] = message["media"]
    assert media == {"id": "0", "kind": media["kind"], "mime_type": case.mime_type,
                     "size": len(case.data) if case.how == "upload" else None,
                     "file_name": case.name, "caption": "here it is",
                     **({"url": url} if case.how == "url" else {})}  # fmt: skip
    assert (await gw.final(message["id"]))["status"] == "sent"

    if case.channel == "telegram":
        [sent] = telegram_api.files_sent
        assert (sent.method, sent.chat_id, sent.caption) == (case.arrives_as, 42, "here it is")
        assert sent.data == case.data
        assert sent.url == ("" if case.how == "upload" else url)
        assert telegram_api.sent == []  # the file and its caption are one message
    elif case.channel == "whatsapp_cloud":
        [request] = graph_api.sent
        assert request["type"] == case.arrives_as
        media = request[case.arrives_as]
        assert media.get("caption") == (None if case.arrives_as == "audio" else "here it is")
        assert media.get("filename") == (case.name if case.arrives_as == "document" else None)
        [fetched] = graph_api.fetched
        assert (fetched.status, fetched.content_type, fetched.data) == (
            200,
            case.mime_type,
            case.data,
        )
        prefix = f"{PUBLIC_URL}/media/" if case.how == "upload" else url
        assert media["link"].startswith(prefix)
    else:
        [request] = twilio_api.sent
        assert request["Body"] == "here it is"
        [fetched] = twilio_api.fetched
        assert (fetched.status, fetched.head_status) == (200, 200)
        assert (fetched.content_type, fetched.data) == (case.arrives_as, case.data)
        if case.how == "upload":
            assert request["MediaUrl"].startswith(f"{PUBLIC_URL}/media/")
        else:
            assert request["MediaUrl"] == url
    if case.how == "upload":  # the agent can open what they sent
        download = await gw.download(f"/api/v1/messages/{message['id']}/media/0/")
        assert (download.code, download.body) == (200, case.data)
        assert download.headers["Content-Type"] == case.mime_type
    else:
        assert file_host.requests.count(f"/files/{case.name}") >= 1  # the provider fetched it


async def test_twilios_link_to_an_upload_expires_and_cannot_be_guessed(
    start, twilio_api, caplog
) -> None:
    gw, contact_id = await start("whatsapp")
    status, message = await upload(gw, contact_id, "photo.jpg", JPEG, "image/jpeg")
    assert status == 201, message
    await gw.final(message["id"])
    link = twilio_api.sent[0]["MediaUrl"].removeprefix(PUBLIC_URL)
    _, upload_id, expires, signature = link.strip("/").split("/")

    async def get(path: str) -> Any:
        response = await gw.anonymous.http.fetch(gw.anonymous.base_url + path, raise_error=False)
        return response

    assert (await get(link)).body == JPEG  # no credentials: the link is the permission
    other = "A" if signature[0] != "A" else "B"
    expired = gw.services.links.url(upload_id, expires=int(time.time()) - 1)
    for label, path in [
        ("a changed signature", f"/media/{upload_id}/{expires}/{other}{signature[1:]}"),
        ("a later expiry", f"/media/{upload_id}/{int(expires) + 3600}/{signature}"),
        ("another upload", f"/media/{'x' * len(upload_id)}/{expires}/{signature}"),
        ("an expired link", expired.removeprefix(PUBLIC_URL)),
        ("no signature", f"/media/{upload_id}/{expires}/"),
    ]:
        response = await get(path)
        assert response.code == 404, label
        assert json.loads(response.body)["error"]["code"] == "not_found", label
    # The access log names the route, never a working link's signature.
    assert not [r for r in caplog.records if signature in r.getMessage()]


async def _nothing_stored(gw: Gateway) -> None:
    assert [m["direction"] for m in await gw.messages()] == ["in"]
    assert await gw.storage.uploads.count() == 0


# label, channel, the request (an upload or a media_url), what the 400 says
BAD_FILES = [
    ("whatsapp image over 5 MB", "whatsapp", ("upload", "big.jpg", JPEG + b"\0" * (5 * MB), "image/jpeg"), "at most 5 MB"),
    ("telegram photo over 10 MB", "telegram", ("upload", "big.jpg", JPEG + b"\0" * (10 * MB), "image/jpeg"), "at most 10 MB"),
    ("whatsapp html", "whatsapp", ("upload", "page.html", b"<script>alert(1)</script>", "text/html"), "does not send text/html"),
    ("whatsapp exe by url", "whatsapp", ("url", "https://files.example.com/setup.exe"), "does not send"),
    ("ftp url", "telegram", ("url", "ftp://files.example.com/invoice.pdf"), "Not a valid URL"),
    ("javascript url", "whatsapp", ("url", "javascript:alert(1)"), "Not a valid URL"),
    ("file url", "telegram", ("url", "file:///etc/passwd"), "Not a valid URL"),
    ("url with credentials", "telegram", ("url", "https://me:pw@files.example.com/a.pdf"), "user:password"),
    ("caption too long", "telegram", ("upload", "photo.jpg", JPEG, "image/jpeg", "x" * 1025), "at most 1024"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "channel", "request_", "said"), BAD_FILES, ids=[c[0] for c in BAD_FILES]
)
async def test_a_file_the_channel_would_refuse_is_a_400_and_stores_nothing(
    start, label, channel, request_, said
) -> None:
    gw, contact_id = await start(channel)
    if request_[0] == "upload":
        caption = {"content": request_[4]} if len(request_) > 4 else {}
        status, answer = await upload(gw, contact_id, *request_[1:4], **caption)
    else:
        status, answer = await by_url(gw, contact_id, request_[1])
    assert status == 400, answer
    assert said in json.dumps(answer), answer
    await _nothing_stored(gw)


async def test_an_upload_over_the_gateways_cap_is_refused_before_it_is_read(start) -> None:
    """25 MB against media.max_bytes (20 MB): answered when the headers are in, so the
    client (curl sends Expect: 100-continue) need not send the rest."""
    gw, contact_id = await start("telegram")
    body, content_type = multipart({"contact_id": contact_id},
                                   [("file", "big.pdf", b"%PDF" + b"\0" * (25 * MB), "application/pdf")])  # fmt: skip
    host, port = gw.anonymous.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST /api/v1/messages/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gw.agent.token}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\n\r\n".encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 400"), head
    length = int(
        next(
            line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        ).split(b":")[1]
    )
    answer = json.loads(await reader.readexactly(length))
    assert "at most 20 MB" in answer["error"]["message"], answer
    writer.close()
    await _nothing_stored(gw)


async def test_a_malformed_upload_is_a_400_and_stores_nothing(start) -> None:
    gw, contact_id = await start("telegram")
    two = multipart({"contact_id": contact_id},
                    [("file", "a.jpg", JPEG, "image/jpeg"), ("file", "b.jpg", JPEG, "image/jpeg")])  # fmt: skip
    none = multipart({"contact_id": contact_id}, [])
    body, content_type = multipart(
        {"contact_id": contact_id}, [("file", "a.jpg", JPEG, "image/jpeg")]
    )
    cut = (body[: len(body) // 2], content_type)  # whole as HTTP, but its last part is missing
    unknown = multipart(
        {"contact_id": contact_id, "colour": "red"}, [("file", "a.jpg", JPEG, "image/jpeg")]
    )
    for label, (data, kind), said in [
        ("two files", two, "one file"),
        ("no file", none, "one file"),
        ("no final boundary", cut, "multipart"),
        ("an unknown field", unknown, "colour"),
    ]:
        status, answer = await gw.agent.fetch(
            "POST", "/api/v1/messages/", body=data, headers={"Content-Type": kind}
        )
        assert status == 400, (label, answer)
        assert said in json.dumps(answer), (label, answer)
    await _nothing_stored(gw)


async def test_an_upload_cut_off_mid_body_stores_nothing(start, telegram_api, caplog) -> None:
    gw, contact_id = await start("telegram")
    body, content_type = multipart(
        {"contact_id": contact_id}, [("file", "a.pdf", PDF * 50, "application/pdf")]
    )
    headers = {"Authorization": f"Bearer {gw.agent.token}", "Content-Type": content_type}
    await gw.cut_off("/api/v1/messages/", headers, body, sent=len(body) // 2)
    await _nothing_stored(gw)
    assert telegram_api.files_sent == []
    # Nobody got an answer: logged as the client's hang-up (499), not as our 500.
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_file_to_whatsapp_after_the_window_is_a_409_and_stores_nothing(
    start, gateway, twilio_api, storage
) -> None:
    _, contact_id = await start("whatsapp")
    # 25 hours on: the stored contact last wrote then, and a gateway reads it afresh.
    ago = datetime.now(UTC) - timedelta(hours=25)
    await storage.contacts.collection.update_one(
        {"_id": contact_id}, {"$set": {"last_message_at": ago}}
    )
    later: Gateway = await gateway(whatsapp(twilio_api))
    for status, answer in [
        await upload(later, contact_id, "photo.jpg", JPEG, "image/jpeg"),
        await by_url(later, contact_id, "https://files.example.com/invoice.pdf"),
    ]:
        assert status == 409, answer
        assert answer["error"]["code"] == "window_closed"
    await _nothing_stored(later)


async def test_a_retried_upload_with_its_key_is_one_message_and_one_file(
    start, telegram_api
) -> None:
    gw, contact_id = await start("telegram")
    body, content_type = multipart(
        {"contact_id": contact_id}, [("file", "a.jpg", JPEG, "image/jpeg")]
    )
    headers = {"Content-Type": content_type, "Idempotency-Key": "upload-1"}
    answers = [await gw.agent.fetch("POST", "/api/v1/messages/", body=body, headers=headers)
               for _ in range(2)]  # fmt: skip
    assert [a[0] for a in answers] == [201, 201]
    assert answers[0][1]["id"] == answers[1][1]["id"]
    await gw.final(answers[0][1]["id"])
    assert len(telegram_api.files_sent) == 1
    files = await gw.storage.uploads.files.count_documents({})
    assert files == 1


async def test_an_upload_to_whatsapp_needs_a_public_url(start) -> None:
    gw, contact_id = await start("whatsapp", public_url="")
    status, answer = await upload(gw, contact_id, "photo.jpg", JPEG, "image/jpeg")
    assert status == 400, answer
    assert "PUBLIC_URL" in answer["error"]["message"]
    await _nothing_stored(gw)


async def test_the_mock_channel_sends_no_files(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    body = json.dumps({"contact_id": "7", "message": "hi"})
    assert (await gw.post(MOCK_URL, body, MOCK_HEADERS))[0] == 200
    contact_id = (await gw.messages())[0]["contact_id"]
    status, answer = await upload(gw, contact_id, "photo.jpg", JPEG, "image/jpeg")
    assert status == 400, answer
    assert "sends no files" in answer["error"]["message"]
    await _nothing_stored(gw)
    [conversation] = (await gw.agent.fetch("GET", "/api/v1/conversations/"))[1]["results"]
    assert conversation["window_expires_at"] is None  # no window on this channel


async def test_a_file_over_the_configured_cap_is_refused_with_the_cap(start) -> None:
    gw, contact_id = await start("telegram", media=MediaConfig(max_bytes=4096))
    status, answer = await upload(gw, contact_id, "invoice.pdf", PDF * 3, "application/pdf")
    assert status == 400, answer
    assert "media.max_bytes" in answer["error"]["message"]
    await _nothing_stored(gw)
