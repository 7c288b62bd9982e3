"""Two gateways on one database: one works the bot at a time, the other takes over.

Both are real ``bot-gateway serve`` processes on the session's database; the fake
Bot API counts getUpdates calls that overlap, which must never happen for one bot.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path

from testkit.fakes.telegram import TOKEN, FakeBotAPI
from testkit.helpers import Client, EventStream, async_wait_until, free_port, sign_in, sign_up
from testkit.processes import exited, launch, until_ready

LEASE_SECONDS = 3
HELD = 'gateway_channel_lease_held{channel="tg"}'


def _config(workdir: Path, port: int, mongo_uri: str, database: str, api: FakeBotAPI) -> Path:
    config = {
        "data_dir": str(workdir / "data"),
        "server": {"port": port},
        "storage": {"uri": mongo_uri, "database": database},
        "auth": {"jwt_secret": "cluster-test-secret-" + "c" * 32},  # shared by both
        "cluster": {"lease_seconds": LEASE_SECONDS},
        "delivery": {
            "max_attempts": 100,
            "backoff_seconds": 0.1,
            "max_backoff_seconds": 0.3,
            "stale_sending_seconds": 2,
        },
        "channels": [
            {
                "name": "tg",
                "type": "telegram",
                "token": TOKEN,
                "mode": "polling",
                "api_base": api.base_url,
                "poll_timeout_seconds": 1,
                "seconds_between_messages_to_a_chat": 0,
            }
        ],
    }
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


async def test_one_gateway_works_a_bot_and_the_other_takes_over_after_kill_9(
    telegram_api: FakeBotAPI, mongo_uri: str, tmp_path: Path
) -> None:
    database = f"cluster_{uuid.uuid4().hex[:12]}"
    clients, processes = [], []
    for name in ("a", "b"):
        port = free_port()
        config = _config(tmp_path / name, port, mongo_uri, database, telegram_api)
        processes.append(launch("serve", "--config", str(config), log=tmp_path / f"{name}.log"))
        clients.append(Client(f"http://127.0.0.1:{port}"))
    try:
        for client in clients:
            await until_ready(client)

        async def one_holder() -> bool:
            held = [await c.metric(HELD) for c in clients]
            return sorted(held) == [0.0, 1.0]

        await async_wait_until(one_holder, 3 * LEASE_SECONDS, "one gateway to hold the bot")
        holder = [await c.metric(HELD) for c in clients].index(1.0)
        survivor = clients[1 - holder]

        agent = await sign_up(survivor, "ana")
        # A stream held on the survivor shows what the holder received: events come
        # from the shared database, not from the process that wrote them.
        stream = await EventStream.open(
            survivor.base_url, "/api/v1/events/", {"Authorization": f"Bearer {agent.token}"}
        )
        try:
            telegram_api.user_writes(42, "hi", "Zé")
            event = await stream.next(15)
            while event["event"] != "message.created":
                event = await stream.next(15)
            assert event["data"]["message"]["content"] == "hi"
        finally:
            await stream.close()

        async def contact_id() -> str | None:
            _, page = await agent.fetch("GET", "/api/v1/contacts/")
            return page["results"][0]["id"] if page["results"] else None

        await async_wait_until(contact_id, 15, "the holder to poll the update in")
        contact = await contact_id()

        async def reply(text: str) -> None:
            body = {"contact_id": contact, "content": text}
            assert (await agent.fetch("POST", "/api/v1/messages/", json_body=body))[0] == 201

        for n in range(3):  # queued through the survivor, sent by the holder
            await reply(f"before {n}")
        await async_wait_until(lambda: _true(len(telegram_api.sent) == 3), 15, "the holder to send")

        # Telegram becomes unreachable: the holder's sends fail and are retried.
        telegram_api.down = True
        for n in range(10):
            await reply(f"during {n}")
        tried = telegram_api.calls.count("sendMessage")
        await async_wait_until(
            lambda: _true(telegram_api.calls.count("sendMessage") > tried + 3),
            15,
            "the holder to try sending while Telegram is away",
        )
        processes[holder].send_signal(signal.SIGKILL)  # no goodbye, no lease handed back
        await exited(processes[holder], 20)
        killed = time.monotonic()
        calls_at_kill = len(telegram_api.calls)
        telegram_api.down = False

        async def taken_over() -> bool:
            since = telegram_api.calls[calls_at_kill:]
            return "getUpdates" in since and len(telegram_api.sent) > 3

        await async_wait_until(taken_over, LEASE_SECONDS + 5, "the survivor to poll and send")
        assert time.monotonic() - killed <= LEASE_SECONDS + 5
        assert await survivor.metric(HELD) == 1.0

        texts = [f"before {n}" for n in range(3)] + [f"during {n}" for n in range(10)]
        await async_wait_until(
            lambda: _true(len(telegram_api.sent) >= len(texts)), 20, "every message to be sent"
        )
        assert telegram_api.sent_to(42) == texts  # none twice, none lost, in order
        assert telegram_api.most_polls_at_once == 1  # never two pollers for one bot

        # And the survivor still takes what arrives next.
        telegram_api.user_writes(42, "still there?", "Zé")
        agent = await sign_in(survivor, "ana")

        async def second_message() -> bool:
            _, page = await agent.fetch("GET", "/api/v1/messages/?direction=in")
            return len(page["results"]) == 2

        await async_wait_until(second_message, 15, "the survivor to poll the next update")
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            await exited(process, 20)


async def _true(value: bool) -> bool:
    return value
