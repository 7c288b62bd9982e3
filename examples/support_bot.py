"""A support bot for bot-gateway: it answers first, and hands off to the agents.

It needs nothing but Python's standard library. It receives the gateway's events as
a subscription's webhooks (verifying each signature as Standard Webhooks
specifies), and answers with its API token:

- a greeting or a question about opening hours: it answers;
- "agent", "human" or "person": it hands the conversation to the agents;
- anything else: it says what it can do.

Once an agent holds the conversation the gateway refuses the bot's messages (409),
and the bot lets it be. Run it with (see docs/api.md, "Connect a bot"):

    GATEWAY_URL=http://127.0.0.1:8000 BOT_TOKEN=bgw_... WEBHOOK_SECRET=whsec_... \\
        python examples/support_bot.py --port 8300
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOLERANCE_SECONDS = 5 * 60  # older or newer signatures are refused, as the spec says
HANDOFF_WORDS = ("agent", "human", "person", "atendente", "humano")
HOURS_WORDS = ("hours", "open", "horário", "horario")


def verified(secret: str, headers: Any, body: bytes) -> bool:
    """Whether the webhook carries a valid signature of ``body`` by ``secret``:
    https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md"""
    message_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    if not message_id or not timestamp.isdigit():
        return False
    if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [part.partition(",")[2] for part in headers.get("webhook-signature", "").split()]
    return any(hmac.compare_digest(expected, signature) for signature in given)


class Gateway:
    """The few calls the bot makes, with its token."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url.rstrip("/"), token

    def call(self, path: str, body: dict[str, Any], key: str = "") -> int:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        if key:  # a redelivered event's reply goes out once
            headers["Idempotency-Key"] = key
        request = urllib.request.Request(  # noqa: S310 - the operator's own gateway URL
            self.url + path, data=json.dumps(body).encode(), method="POST", headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return exc.code  # 409: an agent holds the conversation now

    def reply(self, contact_id: str, text: str, key: str) -> int:
        return self.call("/api/v1/messages/", {"contact_id": contact_id, "content": text}, key)

    def handoff(self, conversation_id: str, reason: str) -> int:
        path = f"/api/v1/conversations/{conversation_id}/handoff/"
        return self.call(path, {"reason": reason})


def answer(gateway: Gateway, event: dict[str, Any]) -> None:
    """What the bot does with one event: only a contact's new message concerns it."""
    message = event.get("message") or {}
    if event.get("type") != "message.created" or message.get("direction") != "in":
        return
    text = message.get("content", "").lower()
    contact_id, key = message["contact"]["id"], f"bot-reply-{message['id']}"
    if any(word in text for word in HANDOFF_WORDS):
        gateway.reply(contact_id, "I'm passing you to a colleague. One moment, please.", key)
        gateway.handoff(event["conversation_id"], f"the contact asked for a person: {text!r}")
    elif any(word in text for word in HOURS_WORDS):
        gateway.reply(contact_id, "We're open Monday to Friday, 9:00 to 18:00.", key)
    else:
        gateway.reply(contact_id, "Hi! Ask me about our hours, or say 'agent' for a person.", key)


def serve(port: int, secret: str, gateway: Gateway) -> None:
    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if not verified(secret, self.headers, body):
                self.send_response(401)
                self.end_headers()
                return
            answer(gateway, json.loads(body))
            self.send_response(204)  # a 2xx: the gateway sends the next event
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Hook).serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8300, help="where webhooks arrive")
    args = parser.parse_args()
    gateway = Gateway(os.environ["GATEWAY_URL"], os.environ["BOT_TOKEN"])
    serve(args.port, os.environ["WEBHOOK_SECRET"], gateway)


if __name__ == "__main__":
    main()
