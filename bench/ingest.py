"""Inbound ingest: the Telegram and Twilio webhook routes under load, and the ceiling.

Each request is a distinct message (its own update_id or MessageSid) from one of
1,000 chats, with the real secret header or a valid Twilio signature, so the
gateway verifies, parses and stores every one. The bare Tornado handler gets the
same Telegram requests: its rate and CPU per request are the yardstick.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from pymongo import MongoClient
from pymongo.database import Database
from twilio.request_validator import RequestValidator

from bench.harness import ceiling, gateway
from bench.load import LoadResult, Row
from bench.providers import fake_bot_api
from testkit.fakes.telegram import FakeBotAPI

CHATS = 1_000
TELEGRAM_SECRET = "bench-telegram-secret"
TELEGRAM_TOKEN = "123456:bench-telegram-token"
TWILIO_SID = "AC" + "b" * 32
TWILIO_TOKEN = "bench-twilio-auth-token"
TWILIO_FROM = "+14155238886"
TELEGRAM_PATH = "/webhooks/telegram/telegram/"
TWILIO_PATH = "/webhooks/whatsapp/whatsapp/"
TELEGRAM_HEADERS = ("X-Telegram-Bot-Api-Secret-Token", "Content-Type")
TWILIO_HEADERS = ("X-Twilio-Signature", "Content-Type")


@dataclass(frozen=True)
class Sides:
    """The two sides an ingest bench compares, running."""

    bare_url: str  # the bare Tornado handler
    bare_pid: int
    base: str  # the gateway, http://127.0.0.1:port
    port: int
    pid: int
    bot_api: FakeBotAPI  # where the gateway's Telegram channel sends


@contextlib.contextmanager
def sides(uri: str, database: str, tmp: Path) -> Iterator[Sides]:
    """The bare handler, and a `bot-gateway serve` on ``uri`` with the bench's
    channels, its sends going to a fake Bot API: stopped on leaving."""
    with (
        ceiling() as (bare_port, bare_pid),
        fake_bot_api(TELEGRAM_TOKEN) as bot_api,
        gateway(uri, database, tmp, channels=channels_yaml(bot_api.base_url)) as (port, pid),
    ):
        local = "http://127.0.0.1"
        yield Sides(f"{local}:{bare_port}", bare_pid, f"{local}:{port}", port, pid, bot_api)


def channels_yaml(bot_api: str) -> str:
    """The bench gateway's channels: webhooks in, the fake Bot API out, no rate limits.

    Nothing is sent through Twilio, so its API address is one nobody listens on.
    """
    return json.dumps(
        [
            {
                "name": "telegram",
                "type": "telegram",
                "token": TELEGRAM_TOKEN,
                "mode": "webhook",
                "webhook_secret": TELEGRAM_SECRET,
                "api_base": bot_api,
                "messages_per_second": 0,
                "seconds_between_messages_to_a_chat": 0,
            },
            {
                "name": "whatsapp",
                "type": "whatsapp",
                "account_sid": TWILIO_SID,
                "auth_token": TWILIO_TOKEN,
                "from_number": TWILIO_FROM,
                "api_base": "http://127.0.0.1:9",
            },
        ]
    )


def telegram_rows(count: int, first: int = 1, *, new_contacts: bool = False) -> Iterator[Row]:
    """Messages ``first``.. from the CHATS chats in turn, or each from a chat never
    seen before (a contact and a conversation created, and assigned, per message)."""
    for n in range(first, first + count):
        chat = 10_000_000 + n if new_contacts else 100_000 + n % CHATS
        person = {"id": chat, "is_bot": False, "first_name": f"User {n % CHATS}"}
        update = {
            "update_id": n,
            "message": {
                "message_id": n,
                "date": 1_764_000_000 + n,
                "chat": {**person, "type": "private"},
                "from": person,
                "text": f"hello from chat {chat}, message {n}",
            },
        }
        body = json.dumps(update, separators=(",", ":"))
        yield Row(TELEGRAM_PATH, (TELEGRAM_SECRET, "application/json"), body)


def twilio_rows(count: int, base_url: str) -> Iterator[Row]:
    validator = RequestValidator(TWILIO_TOKEN)
    url = base_url + TWILIO_PATH
    for n in range(count):
        phone = f"+1555{n % CHATS:07d}"
        form = {
            "MessageSid": f"SM{n:032x}",
            "AccountSid": TWILIO_SID,
            "From": f"whatsapp:{phone}",
            "To": f"whatsapp:{TWILIO_FROM}",
            "Body": f"hello from {phone}, message {n}",
            "ProfileName": f"User {n % CHATS}",
            "WaId": phone[1:],
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
        }
        signature = validator.compute_signature(url, form)
        headers = (signature, "application/x-www-form-urlencoded")
        yield Row(TWILIO_PATH, headers, urlencode(form))


@dataclass(frozen=True)
class Ingest:
    load: LoadResult
    stored: int

    def figures(self, ceiling: LoadResult) -> dict[str, float | int | bool]:
        return {
            "rps": round(self.load.rps),
            "p50_ms": round(self.load.p50_ms, 2),
            "p99_ms": round(self.load.p99_ms, 2),
            "ratio": round(self.load.rps / ceiling.rps, 3),
            "cpu_us_per_webhook": round(self.load.cpu_us_per_request),
            "acked": self.load.acked,
            "stored": self.stored,
            "stored_equals_acked": self.stored == self.load.acked == self.load.sent,
        }


def channel_id(db: Database, name: str) -> str:
    return db.channels.find_one({"name": name}, {"_id": 1})["_id"]


def stored_inbound(uri: str, database: str, channel_name: str) -> int:
    with MongoClient(uri) as client:
        db = client[database]
        channel = channel_id(db, channel_name)
        return db.messages.count_documents({"channel_id": channel, "direction": "in"})
