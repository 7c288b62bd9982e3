"""The README's bot, end to end: the example in examples/support_bot.py, run as its
own process with a token and a subscription, answers a contact on a real gateway
process and hands the conversation to the agents when asked."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

from testkit.helpers import Client, async_wait_until, free_port, sign_up
from testkit.processes import exited, launch, run_script, tail, until_ready

EXAMPLE = Path(__file__).parents[2] / "examples" / "support_bot.py"


def _config(workdir: Path, port: int) -> Path:
    config = {
        "data_dir": str(workdir / "data"),
        "server": {"port": port},
        "auth": {"jwt_secret": "bot-example-test-secret-" + "b" * 32},
        "subscriptions": {"allow_private_targets": True},  # the bot is on 127.0.0.1
        "bots": {"reply_deadline_seconds": 600},
    }
    path = workdir / "config.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


async def _contact_writes(client: Client, message_id: int, text: str) -> None:
    body = {"contact_id": 7, "message": text, "name": "Zé", "message_id": message_id}
    assert (await client.fetch("POST", "/webhooks/mock/mock/", json_body=body))[0] == 200


async def _set_up_the_bot(admin: Client, bot_port: int) -> tuple[dict[str, str], str]:
    """The README's steps: a bot token, the channel's bot, a subscription for it."""
    _, minted = await admin.fetch(
        "POST",
        "/api/v1/tokens/",
        json_body={
            "name": "Support bot",
            "role": "bot",
            "scopes": ["read", "send", "conversations"],
        },
    )
    _, channels = await admin.fetch("GET", "/api/v1/channels/")
    mock = next(c for c in channels["results"] if c["name"] == "mock")
    await admin.fetch(
        "PATCH", f"/api/v1/channels/{mock['id']}/", json_body={"bot_id": minted["id"]}
    )
    status, subscription = await admin.fetch(
        "POST",
        "/api/v1/subscriptions/",
        json_body={
            "url": f"http://127.0.0.1:{bot_port}/",
            "events": ["message.created"],
            "description": "the support bot",
            "bot_id": minted["id"],
        },
    )
    assert status == 201, subscription
    env = {"BOT_TOKEN": minted["token"], "WEBHOOK_SECRET": subscription["secret"]}
    return env, subscription["id"]


async def _thread(agent: Client) -> list[tuple[str, str, str]]:
    _, page = await agent.fetch("GET", "/api/v1/messages/?page_size=100")
    shown = [
        (m["direction"], (m["agent"] or {}).get("kind", ""), m["content"]) for m in page["results"]
    ]
    return list(reversed(shown))


async def test_the_example_bot_answers_and_hands_off_to_the_agents(tmp_path: Path) -> None:
    port, bot_port = free_port(), free_port()
    log = tmp_path / "gateway.log"
    client = Client(f"http://127.0.0.1:{port}")
    gateway = launch("serve", "--config", str(_config(tmp_path, port)), log=log)
    bot: subprocess.Popen[bytes] | None = None
    try:
        await until_ready(client)
        ana = await sign_up(client, "ana")
        env, subscription_id = await _set_up_the_bot(ana, bot_port)
        env["GATEWAY_URL"] = client.base_url
        bot = run_script(EXAMPLE, "--port", str(bot_port), log=tmp_path / "bot.log", env=env)
        await _contact_writes(client, 1, "What are your hours?")

        async def answered(count: int) -> Any:
            async def check() -> bool:
                thread = await _thread(ana)
                return sum(1 for d, kind, _ in thread if kind == "bot") >= count

            return check

        await async_wait_until(await answered(1), 30, "the bot's answer")
        _, page = await ana.fetch("GET", "/api/v1/conversations/")
        [conversation] = page["results"]
        assert (conversation["status"], conversation["assignee_id"]) == ("bot", None)

        await _contact_writes(client, 2, "I want to talk to a human")

        async def handed_off() -> bool:
            _, page = await ana.fetch("GET", "/api/v1/conversations/")
            return page["results"][0]["assignee_id"] is not None

        await async_wait_until(handed_off, 30, "the hand-off to ana")
        _, page = await ana.fetch("GET", "/api/v1/conversations/")
        [conversation] = page["results"]
        assert conversation["status"] == "open"
        assert conversation["handoff_reason"].startswith("the contact asked for a person")
        assert await _thread(ana) == [
            ("in", "", "What are your hours?"),
            ("out", "bot", "We're open Monday to Friday, 9:00 to 18:00."),
            ("in", "", "I want to talk to a human"),
            ("out", "bot", "I'm passing you to a colleague. One moment, please."),
        ]
        # From now on the agents answer; the bot's next word to this contact is refused.
        await _contact_writes(client, 3, "hello?")
        deliveries = f"/api/v1/subscriptions/{subscription_id}/deliveries/?page_size=100"

        async def bot_heard_it() -> bool:  # it answers 204 once it has tried to reply
            _, page = await ana.fetch("GET", deliveries)
            return sum(1 for d in page["results"] if d["status"] == 204) == 5  # 3 in, 2 out

        await async_wait_until(bot_heard_it, 30, "the bot to get the last message")
        _, sent = await ana.fetch("GET", "/api/v1/messages/?direction=out")
        assert len(sent["results"]) == 2  # its reply was refused: ana holds it
    finally:
        if bot is not None:
            bot.kill()
            bot.wait()
        gateway.send_signal(signal.SIGTERM)
        code = await exited(gateway, 20)
        assert code == 0, tail(log)
