"""Event latency: a webhook acknowledged → its ``message.created`` on an agent's stream.

    python -m bench.events [--messages N]

Starts a real `bot-gateway serve` on its embedded database (or on MONGODB_URI,
where events wait ``events.settle_ms`` as on any shared database) with the mock
channel, signs an agent in, holds ``/api/v1/events/`` open, and posts N mock
webhooks one after another (1,000 by default). For each it times from the
webhook's 200 to the arrival of the event naming that message's text. Prints p50
and p99 against the target: p99 at most 100 ms on the embedded database.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import socket
import sys
import threading
import time
from pathlib import Path

from bench.harness import Api, gateway, machine, percentile, workdir

DATABASE = "bench_events"
SECRET = "bench-mock-secret"
TARGET_P99_MS = 100.0


def _stream(port: int, token: str, arrivals: queue.Queue[tuple[str, float]]) -> socket.socket:
    """Read the stream in a thread; each message.created's text and arrival time."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"GET /api/v1/events/ HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n".encode())

    def read() -> None:
        buffer = b""
        with sock.makefile("rb") as stream:
            for line in stream:
                buffer += line
                if line != b"\n":
                    continue
                block, buffer = buffer.decode(), b""
                if "event: message.created" in block:
                    data = next(x for x in block.splitlines() if x.startswith("data:"))
                    text = json.loads(data[5:])["message"]["content"]
                    arrivals.put((text, time.perf_counter()))

    threading.Thread(target=read, daemon=True).start()
    return sock


def run(messages: int) -> dict[str, float]:
    # The gateway's own embedded server, as `bot-gateway serve` runs it: it owns its
    # data dir, so events stream as soon as they are written (no settle delay).
    uri = os.environ.get("MONGODB_URI", "embedded")
    with workdir() as tmp:
        channels = json.dumps([{"name": "mock", "type": "mock", "secret": SECRET}])
        with gateway(uri, DATABASE, Path(tmp), channels=channels) as (port, _):
            api = Api(port)
            api.sign_up("bench", "bench-password-1")
            assert api.token
            arrivals: queue.Queue[tuple[str, float]] = queue.Queue()
            sock = _stream(port, api.token, arrivals)
            hook = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            headers = {"X-Mock-Secret": SECRET, "Content-Type": "application/json"}
            samples = []
            for n in range(messages):
                text = f"bench {n}"
                body = json.dumps({"contact_id": n % 50, "message": text, "message_id": n})
                hook.request("POST", "/webhooks/mock/mock/", body=body, headers=headers)
                response = hook.getresponse()
                response.read()
                assert response.status == 200
                acknowledged = time.perf_counter()
                while True:
                    got, at = arrivals.get(timeout=30)
                    if got == text:
                        samples.append(at - acknowledged)
                        break
            sock.close()
    return {
        "p50_ms": round(sorted(samples)[len(samples) // 2] * 1000, 2),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    args = parser.parse_args()
    figures = run(args.messages)
    ok = figures["p99_ms"] <= TARGET_P99_MS
    print(f"event latency over {args.messages} webhooks ({machine()}):")
    print(f"  p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms")
    print(f"  target p99 <= {TARGET_P99_MS:g} ms: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
