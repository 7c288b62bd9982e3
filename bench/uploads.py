"""Agents' uploads: how long one takes to be accepted and delivered, and what it costs
the gateway's memory.

    python -m bench.uploads [--mb 19] [--rounds 5] [--at-once 4]

Starts a real `bot-gateway serve` on its own embedded database with a Telegram channel
that sends to a fake Bot API on this machine. An agent uploads a PDF of ``--mb`` MB
(just under media.max_bytes, 20 MB) ``--rounds`` times, one after another: each POST
is timed to its 201, and to the fake Bot API holding the whole file. Then ``--at-once``
uploads go together. The gateway's peak resident memory (VmHWM) is read after each
part, against its memory at rest. Targets: a 201 within 1 s at p50 on loopback, and at
most 4 times the file's size of peak memory for each upload in flight (the body is held
in memory while it is parsed; the gateway does not stream uploads to the database).
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
from pathlib import Path

from bench import ingest
from bench.harness import Api, gateway, machine, workdir
from bench.load import rss_mb
from bench.providers import fake_bot_api
from testkit.fakes.telegram import make_update
from testkit.helpers import multipart

TARGET_ACCEPT_MS = 1000.0
TARGET_PEAK_FACTOR = 4.0


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmHWM for pid {pid}")


def upload(port: int, token: str, contact_id: str, data: bytes) -> float:
    """One multipart POST; seconds to its 201."""
    body, content_type = multipart(
        {"contact_id": contact_id, "content": "the report"},
        [("file", "report.pdf", data, "application/pdf")],
    )
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    connection.request("POST", "/api/v1/messages/", body=body, headers=headers)
    response = connection.getresponse()
    answer = response.read()
    took = time.perf_counter() - started
    connection.close()
    if response.status != 201:
        raise RuntimeError(f"upload answered {response.status}: {answer[:200]!r}")
    return took


def wait_for(count: int, fake: object, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while len(fake.files_sent) < count:  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(fake.files_sent)} of {count} files arrived")  # type: ignore[attr-defined]
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=19.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--at-once", type=int, default=4)
    args = parser.parse_args()
    data = b"%PDF-1.7\n" + b"\x00" * int(args.mb * 1024 * 1024)
    size_mb = len(data) / 1048576
    figures: dict[str, object] = {"machine": machine(), "file_mb": round(size_mb, 1)}
    with workdir() as tmp, fake_bot_api(ingest.TELEGRAM_TOKEN) as fake:
        telegram = {"name": "tg", "type": "telegram", "token": ingest.TELEGRAM_TOKEN,
                    "mode": "webhook", "webhook_secret": ingest.TELEGRAM_SECRET,
                    "api_base": fake.base_url, "messages_per_second": 0,
                    "seconds_between_messages_to_a_chat": 0}  # fmt: skip
        with gateway(None, "bench_uploads", Path(tmp), channels=json.dumps([telegram])) as (
            port,
            pid,
        ):
            api = Api(port)
            api.sign_up("bench", "bench-password-1")
            hook = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            update = json.dumps(make_update(1, 42, "hi", "Zé"))
            signed = {"Content-Type": "application/json",
                      "X-Telegram-Bot-Api-Secret-Token": ingest.TELEGRAM_SECRET}  # fmt: skip
            hook.request("POST", "/webhooks/telegram/tg/", body=update, headers=signed)
            assert hook.getresponse().status == 200
            _, contacts = api.call("GET", "/api/v1/contacts/")
            contact_id = contacts["results"][0]["id"]
            time.sleep(2.0)  # at rest: start-up work is over
            figures["rss_at_rest_mb"] = rest = rss_mb(pid)

            accepted, delivered = [], []
            for n in range(args.rounds):
                started = time.perf_counter()
                accepted.append(upload(port, api.token or "", contact_id, data))
                wait_for(n + 1, fake)
                delivered.append(time.perf_counter() - started)
            figures["accept_p50_ms"] = round(statistics.median(accepted) * 1000, 1)
            figures["accept_max_ms"] = round(max(accepted) * 1000, 1)
            figures["delivered_p50_ms"] = round(statistics.median(delivered) * 1000, 1)
            figures["peak_one_at_a_time_mb"] = one = peak_mb(pid)

            job = (port, api.token or "", contact_id, data)
            threads = [threading.Thread(target=upload, args=job) for _ in range(args.at_once)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wait_for(args.rounds + args.at_once, fake)
            figures["peak_at_once_mb"] = together = peak_mb(pid)
            assert all(f.data == data for f in fake.files_sent), "a file arrived changed"
    figures["peak_per_upload_x_file"] = round((one - rest) / size_mb, 2)
    figures["peak_per_upload_at_once_x_file"] = round((together - rest) / size_mb / args.at_once, 2)
    report(figures)


def report(figures: dict[str, object]) -> None:
    print(json.dumps(figures, indent=2))
    accept_ok = float(figures["accept_p50_ms"]) <= TARGET_ACCEPT_MS  # type: ignore[arg-type]
    worst = max(float(figures["peak_per_upload_x_file"]),  # type: ignore[arg-type]
                float(figures["peak_per_upload_at_once_x_file"]))  # type: ignore[arg-type]  # fmt: skip
    print(f"accepted in {figures['accept_p50_ms']} ms at p50 (target ≤ {TARGET_ACCEPT_MS:.0f} ms): "
          f"{'met' if accept_ok else 'MISSED'}")  # fmt: skip
    print(f"peak memory per upload in flight: {worst} x the file (target ≤ {TARGET_PEAK_FACTOR}): "
          f"{'met' if worst <= TARGET_PEAK_FACTOR else 'MISSED'}")  # fmt: skip
    sys.stdout.flush()


if __name__ == "__main__":
    main()
