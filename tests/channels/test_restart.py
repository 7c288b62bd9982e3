"""Crash safety: a gateway killed with messages queued delivers each exactly once."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from channels.telegram import SECRET_HEADER
from testkit.fakes.telegram import TOKEN, FakeBotAPI, make_update
from testkit.helpers import Client, async_wait_until, free_port, multipart, sign_in, sign_up
from testkit.processes import STARTUP_SECONDS, exited, launch, tail

HOOK_SECRET = "hook-secret"
RECEIPT = b"%PDF-1.7\n" + b"paid in full\n" * 30_000 + b"%%EOF"  # 390 KB: two chunks


def _config(workdir: Path, port: int, api: FakeBotAPI) -> Path:
    config = {
        "data_dir": str(workdir / "data"),
        "server": {"port": port},
        "auth": {"jwt_secret": "restart-test-secret-" + "r" * 32},
        "delivery": {
            "max_attempts": 100,
            "backoff_seconds": 0.1,
            "max_backoff_seconds": 0.3,
            "stale_sending_seconds": 1,
        },
        "channels": [
            {
                "name": "tg",
                "type": "telegram",
                "token": TOKEN,
                "mode": "webhook",
                "webhook_secret": HOOK_SECRET,
                "api_base": api.base_url,
                "seconds_between_messages_to_a_chat": 0,
            }
        ],
    }
    path = workdir / "config.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


async def test_killed_with_messages_queued_then_restarted_delivers_each_once(
    telegram_api: FakeBotAPI, tmp_path: Path
) -> None:
    port = free_port()
    config = _config(tmp_path, port, telegram_api)
    client = Client(f"http://127.0.0.1:{port}")

    async def up() -> bool:
        try:
            return (await client.fetch("GET", "/readyz"))[0] == 200
        except OSError:
            return False

    telegram_api.down = True  # Telegram unreachable: every send fails and is retried
    gateway = launch("serve", "--config", str(config), log=tmp_path / "gateway.log")
    try:
        await async_wait_until(up, STARTUP_SECONDS, "the gateway to start")
        hook = json.dumps(make_update(1, 42, "hi", "Zé"))
        status, _ = await client.fetch(
            "POST",
            "/webhooks/telegram/tg/",
            body=hook,
            headers={SECRET_HEADER: HOOK_SECRET, "Content-Type": "application/json"},
        )
        assert status == 200
        agent = await sign_up(client, "ana")
        _, contacts = await agent.fetch("GET", "/api/v1/contacts/")
        contact_id = contacts["results"][0]["id"]
        texts = [f"message {i}" for i in range(5)]
        for text in texts:
            status, _ = await agent.fetch(
                "POST", "/api/v1/messages/", json_body={"contact_id": contact_id, "content": text}
            )
            assert status == 201
        # A file too: after the restart its bytes come from the database, not memory.
        body, content_type = multipart({"contact_id": contact_id, "content": "the receipt"},
                                       [("file", "receipt.pdf", RECEIPT, "application/pdf")])  # fmt: skip
        status, _ = await agent.fetch(
            "POST", "/api/v1/messages/", body=body, headers={"Content-Type": content_type}
        )
        assert status == 201

        async def tried() -> bool:
            return telegram_api.calls.count("sendMessage") >= 3

        await async_wait_until(tried, 15, "sends to be tried")
    finally:
        gateway.send_signal(signal.SIGKILL)  # no goodbye: whatever was in flight stays so
        await exited(gateway, 20)

    telegram_api.down = False
    restarted = launch("serve", "--config", str(config), log=tmp_path / "gateway.log")
    try:
        await async_wait_until(up, STARTUP_SECONDS, "the gateway to restart")
        agent = await sign_in(client, "ana")

        async def all_sent() -> bool:
            _, page = await agent.fetch("GET", "/api/v1/messages/?direction=out")
            return [m["status"] for m in page["results"]] == ["sent"] * 6

        await async_wait_until(all_sent, 30, "every queued message to be sent")
        assert telegram_api.sent_to(42) == texts  # each exactly once, in order
        [file] = telegram_api.files_sent  # once, whole
        assert (file.method, file.caption, file.data) == ("sendDocument", "the receipt", RECEIPT)
    finally:
        restarted.send_signal(signal.SIGTERM)
        code = await exited(restarted, 15)
        assert code == 0, tail(tmp_path / "gateway.log")
