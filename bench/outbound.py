"""Outbound: how long an agent's POST /api/v1/messages/ takes, and how fast the
dispatcher drains a backlog to the fake Bot API with rate limits off."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench.harness import Api, summary_ms
from bench.load import Row, drive
from tests.fakes.telegram import FakeBotAPI

MESSAGES = "/api/v1/messages/"


def enqueue_latency(api: Api, contact_ids: list[str], count: int) -> dict[str, float]:
    """``count`` sequential POSTs, each timed until its 201."""
    samples = []
    for n in range(count):
        body = {"contact_id": contact_ids[n % len(contact_ids)], "content": f"reply {n}"}
        started = time.perf_counter()
        status, message = api.call("POST", MESSAGES, body)
        samples.append(time.perf_counter() - started)
        assert status == 201, message
    return summary_ms(samples)


def wait_for_sends(fake: FakeBotAPI, total: int, timeout: float) -> float:
    """Poll until the fake has ``total`` messages; returns when the last one arrived."""
    deadline = time.monotonic() + timeout
    while len(fake.sent) < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the dispatcher sent {len(fake.sent)} of {total} in {timeout} s")
        time.sleep(0.05)
    return fake.sent[total - 1].at


def dispatch_rate(
    port: int,
    token: str,
    pid: int,
    contact_ids: list[str],
    count: int,
    fake: FakeBotAPI,
    workdir: Path,
) -> dict[str, float]:
    """Queue ``count`` messages at once (16 connections), then time the backlog's sends."""
    already = len(fake.sent)
    rows = (
        Row(
            MESSAGES,
            (f"Bearer {token}", "application/json"),
            json.dumps({"contact_id": contact_ids[n % len(contact_ids)], "content": f"burst {n}"}),
        )
        for n in range(count)
    )
    started = time.monotonic()
    load = drive(
        f"http://127.0.0.1:{port}", ("Authorization", "Content-Type"), rows, workdir, pid=pid
    )
    assert load.acked == count, load
    last = wait_for_sends(fake, already + count, timeout=max(60.0, count / 10))
    return {
        "enqueue_burst_rps": round(load.rps),
        "enqueue_burst_p99_ms": round(load.p99_ms, 2),
        "dispatch_per_second": round(count / (last - started)),
    }
