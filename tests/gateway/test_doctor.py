"""`bot-gateway doctor`, the installed command: a healthy installation passes every
check, and each fault it looks for is named with what to do, with exit code 1."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

from gateway.config import Config, StorageConfig
from gateway.database import prepare
from storage.database import Storage
from storage.schema import VERSION
from testkit.fakes.graph import ACCESS_TOKEN, PHONE_NUMBER_ID, FakeGraph
from testkit.fakes.telegram import TOKEN, FakeBotAPI
from testkit.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FROM, FakeTwilio
from testkit.processes import BOT_GATEWAY, Gateway


async def _doctor(workdir: Path, config: dict[str, Any], *more: str) -> tuple[int, str]:
    """The command's exit code and output, run while this loop serves the fakes."""
    path = workdir / "config.yaml"
    path.write_text(json.dumps({"data_dir": str(workdir / "data"), **config}))
    process = await asyncio.create_subprocess_exec(
        BOT_GATEWAY, "doctor", "--config", str(path), *more,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    output, errors = await asyncio.wait_for(process.communicate(), 120)
    assert b"Traceback" not in errors, errors.decode()
    return process.returncode or 0, output.decode()


def _telegram(api: FakeBotAPI, mode: str, token: str = TOKEN) -> dict[str, Any]:
    return {"name": "tg", "type": "telegram", "token": token, "mode": mode,
            "api_base": api.base_url}  # fmt: skip


def _lines(output: str, area: str) -> list[str]:
    return [line for line in output.splitlines() if f"  {area}:" in line]


async def test_a_healthy_installation_passes_every_check(
    tmp_path: Path, telegram_api: FakeBotAPI
) -> None:
    code, output = await _doctor(tmp_path, {"channels": []})
    assert code == 0, output  # nothing started on it yet: nothing to find wrong
    assert _lines(output, "indexes") == [
        "ok    indexes: an empty database: the first start makes them"
    ]
    made = Gateway(tmp_path).run("create-agent", "--username", "ana", "--password-stdin",
                                 input="correct horse\n")  # fmt: skip
    assert made.returncode == 0, made.stderr  # as an operator installs: the indexes exist
    code, output = await _doctor(tmp_path, {"channels": [_telegram(telegram_api, "polling")]})
    assert code == 0, output
    assert all(line.startswith("ok") for line in output.splitlines()), output
    assert "secantusdb" in _lines(output, "database")[0]
    assert _lines(output, "channel tg") == [
        "ok    channel tg: token: accepted: the bot is @test_bot",
        "ok    channel tg: webhook: none set: polling gets the updates",
    ]
    assert TOKEN not in output
    code, shown = await _doctor(tmp_path, {"channels": []}, "--json")
    report = json.loads(shown)
    assert (code, report["ok"]) == (0, True)
    assert {"area", "ok", "detail"} == set(report["checks"][0])


async def test_a_wrong_token_and_a_webhook_elsewhere_are_named(
    tmp_path: Path, telegram_api: FakeBotAPI
) -> None:
    wrong = _telegram(telegram_api, "polling", token="123456:not-the-bots-token")
    code, output = await _doctor(tmp_path, {"channels": [wrong]})
    assert code == 1
    [line] = _lines(output, "channel tg")
    assert line.startswith("FAIL  channel tg: token: Telegram refused the token (401)")
    assert "not-the-bots-token" not in output

    telegram_api.webhook = {"url": "https://old-host.example.com/webhooks/telegram/tg/"}
    code, output = await _doctor(tmp_path, {"channels": [_telegram(telegram_api, "polling")]})
    assert code == 1
    assert "FAIL  channel tg: webhook: set at https://old-host.example.com/webhooks/telegram/tg/"
    assert "run `bot-gateway delete-webhook`" in _lines(output, "channel tg")[1]

    public = {"public_url": "https://gateway.example.com"}
    hooked = {"server": public, "channels": [_telegram(telegram_api, "webhook")]}
    code, output = await _doctor(tmp_path, hooked)
    webhook = _lines(output, "channel tg")[1]
    assert webhook.startswith("FAIL  channel tg: webhook: set at https://old-host.example.com")
    assert "not at https://gateway.example.com/webhooks/telegram/tg/" in webhook
    assert "run `bot-gateway set-webhook`" in webhook
    assert _lines(output, "public url")[0].startswith("FAIL")  # no such host from here


async def test_a_standalone_server_and_a_missing_index_are_named(
    tmp_path: Path, mongo_uri: str
) -> None:
    name = f"doctor_test_{uuid.uuid4().hex[:8]}"
    storage = Storage.connect(mongo_uri, name)
    try:
        await prepare(storage, Config(storage=StorageConfig(uri=mongo_uri, database=name)))
        await storage.messages.collection.drop_index("outbound_idempotency")
        external = {"storage": {"uri": mongo_uri, "database": name}, "channels": []}
        code, output = await _doctor(tmp_path, external)
    finally:
        await storage.client.drop_database(name)
        await storage.close()
    assert code == 1
    [standalone] = _lines(output, "replica set")
    assert standalone.startswith("FAIL  replica set: a standalone server")
    [index] = _lines(output, "indexes")
    assert index.startswith("FAIL  indexes: messages lacks outbound_idempotency")
    assert _lines(output, "schema") == [f"ok    schema: version {VERSION}, this gateway's"]


async def test_twilio_credentials_are_checked_at_twilio(
    tmp_path: Path, twilio_api: FakeTwilio
) -> None:
    def whatsapp(token: str) -> dict[str, Any]:
        settings = {"account_sid": ACCOUNT_SID, "auth_token": token, "from_number": FROM}
        return {"name": "wa", "type": "whatsapp", "api_base": twilio_api.base_url, **settings}

    code, output = await _doctor(tmp_path, {"channels": [whatsapp(AUTH_TOKEN)]})
    assert _lines(output, "channel wa") == [
        "ok    channel wa: credentials: accepted: account 'Test account' is active"
    ]
    code, output = await _doctor(tmp_path, {"channels": [whatsapp("not-the-auth-token")]})
    assert code == 1
    [refused] = _lines(output, "channel wa")
    assert refused.startswith("FAIL  channel wa: credentials: Twilio refused them (401)")
    assert "not-the-auth-token" not in output


async def test_the_cloud_apis_token_and_number_are_checked_at_meta(
    tmp_path: Path, graph_api: FakeGraph
) -> None:
    def cloud(token: str, number: str = PHONE_NUMBER_ID) -> dict[str, Any]:
        settings = {"access_token": token, "phone_number_id": number, "app_secret": "s",
                    "verify_token": "v"}  # fmt: skip
        return {"name": "cloud", "type": "whatsapp_cloud", "api_base": graph_api.base_url,
                **settings}  # fmt: skip

    code, output = await _doctor(tmp_path, {"channels": [cloud(ACCESS_TOKEN)]})
    assert _lines(output, "channel cloud") == [
        "ok    channel cloud: credentials: accepted: sending as +1 555-010-0199 "
        "(Test Business), quality GREEN"
    ]
    code, output = await _doctor(tmp_path, {"channels": [cloud("not-the-access-token")]})
    assert code == 1
    assert _lines(output, "channel cloud")[0].startswith(
        "FAIL  channel cloud: credentials: Meta refused the access token (401)"
    )
    assert "not-the-access-token" not in output
