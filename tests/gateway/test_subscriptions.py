"""Outbound webhooks end to end: a real gateway process delivers a scripted
conversation's events to a receiver that verifies them with the Standard Webhooks
reference library, through its 500s, an outage and a ``kill -9`` of the gateway;
replay resends exactly what follows an event."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from testkit.fakes.receiver import Receiver
from testkit.helpers import Client, async_wait_until, free_port, logged_after, sign_in, sign_up
from testkit.processes import exited, launch, tail, until_ready

EVENTS = ["message.created", "message.updated", "conversation.updated"]


def _config(workdir: Path, port: int) -> Path:
    config = {
        "data_dir": str(workdir / "data"),
        "server": {"port": port},
        "auth": {"jwt_secret": "subscriptions-test-secret-" + "s" * 32},
        "subscriptions": {
            "allow_private_targets": True,  # the receiver is on 127.0.0.1
            "retry_first_seconds": 0.05,
            "retry_max_seconds": 0.3,
        },
    }
    path = workdir / "config.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


async def _contact_writes(client: Client, message_id: int, text: str) -> None:
    body = {"contact_id": 42, "message": text, "name": "Zé", "message_id": message_id}
    assert (await client.fetch("POST", "/webhooks/mock/mock/", json_body=body))[0] == 200


async def _ids_after(agent: Client, event_id: str) -> list[str]:
    return [event["id"] for event in await logged_after(agent, event_id)]


async def test_every_event_arrives_once_in_order_through_500s_an_outage_and_kill_9(
    tmp_path: Path,
) -> None:
    receiver = Receiver(script=[500, 500, 500]).start()
    port = free_port()
    config = _config(tmp_path, port)
    log = tmp_path / "gateway.log"
    client = Client(f"http://127.0.0.1:{port}")
    gateway = launch("serve", "--config", str(config), log=log)
    try:
        await until_ready(client)
        ana = await sign_up(client, "ana")
        status, subscription = await ana.fetch(
            "POST",
            "/api/v1/subscriptions/",
            json_body={"url": receiver.url, "events": EVENTS, "description": "CRM"},
        )
        assert status == 201, subscription
        assert subscription["secret"].startswith("whsec_")
        receiver.secret, start = subscription["secret"], subscription["last_event_id"]
        path = f"/api/v1/subscriptions/{subscription['id']}/"

        await _contact_writes(client, 1, "Olá")
        await async_wait_until(lambda: _true(receiver.accepted), 20, "the first 2xx")
        assert receiver.tries[:4] == [receiver.accepted[0]["id"]] * 4  # three 500s, one id

        await receiver.server.refuse()  # unreachable for a while
        await _contact_writes(client, 2, "Preciso de ajuda")
        _, contacts = await ana.fetch("GET", "/api/v1/contacts/")
        contact_id = contacts["results"][0]["id"]
        reply = {"contact_id": contact_id, "content": "Claro!"}
        status, sent = await ana.fetch("POST", "/api/v1/messages/", json_body=reply)
        assert status == 201

        async def failing() -> bool:
            logged = {(e["event"], e["data"].get("message", {}).get("id")) for e in
                      await logged_after(ana, start)}  # fmt: skip
            _, shown = await ana.fetch("GET", path)
            sent_logged = ("message.updated", sent["id"]) in logged  # the reply went out
            return sent_logged and shown["failing_since"] is not None

        await async_wait_until(failing, 20, "deliveries to fail")
    finally:
        gateway.send_signal(signal.SIGKILL)  # mid-delivery: no goodbye
        await exited(gateway, 20)

    receiver.server.resume()
    restarted = launch("serve", "--config", str(config), log=log)
    try:
        await until_ready(client)
        ana = await sign_in(client, "ana")
        await _contact_writes(client, 3, "Obrigado")

        async def all_delivered() -> bool:
            return receiver.ids == await _ids_after(ana, start)

        await async_wait_until(all_delivered, 30, "every event to be delivered")
        expected = await _ids_after(ana, start)
        assert receiver.ids == expected  # every event once, in the log's order
        assert receiver.forged == 0
        types = {event["type"] for event in receiver.accepted}
        assert types == set(EVENTS)
        first = receiver.accepted[0]
        assert first["type"] == "message.created"
        assert first["message"]["content"] == "Olá"  # the stream's own JSON

        status, tries = await ana.fetch("GET", f"{path}deliveries/?page_size=100")
        assert status == 200
        statuses = [d["status"] for d in reversed(tries["results"])]
        assert statuses[:4] == [500, 500, 500, 200]
        assert None in statuses  # the outage: no answer
        _, shown = await ana.fetch("GET", path)
        assert (shown["failing_since"], shown["last_error"]) == (None, None)
        assert "secret" not in shown

        # Replay from the third event: exactly the events after it, again, in order.
        before = len(receiver.accepted)
        status, _ = await ana.fetch("POST", f"{path}replay/", json_body={"after": expected[2]})
        assert status == 200

        async def replayed() -> bool:
            return len(receiver.accepted) >= before + len(expected) - 3

        await async_wait_until(replayed, 30, "the replay")
        assert [event["id"] for event in receiver.accepted[before:]] == expected[3:]
    finally:
        restarted.send_signal(signal.SIGTERM)
        code = await exited(restarted, 20)
        await receiver.server.stop()
        assert code == 0, tail(log)


async def _true(value: Any) -> bool:
    return bool(value)
