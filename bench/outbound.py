"""Outbound: how long an agent's POST /api/v1/messages/ takes, and how fast the
dispatcher drains a backlog to the fake Bot API with rate limits off, in how many
database round trips per message."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from bench.harness import Api, summary_ms
from bench.load import Row, cpu_seconds, drive
from testkit.fakes.telegram import FakeBotAPI

MESSAGES = "/api/v1/messages/"


def enqueue_latency(api: Api, contact_ids: list[str], count: int) -> dict[str, float]:
    """``count`` sequential POSTs, each timed until its 201."""
    api.reconnect()  # not timed: the one before it may have idled out
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


def backlog_drain(
    port: int,
    token: str,
    pid: int,
    contact_ids: list[str],
    count: int,
    fake: FakeBotAPI,
    workdir: Path,
    db_pid: int | None = None,
) -> dict[str, float]:
    """Queue ``count`` messages across ``contact_ids`` while the fake Bot API holds every
    send, then let it answer and time how fast the dispatcher drains the backlog.

    Round trips are the database commands the gateway sent (its /metrics counts them
    with pymongo's command monitoring) from the first enqueue until every outcome is
    recorded, divided by the messages: the enqueue is included. CPU per message is
    the drain's alone, for the gateway and (when its pid is known) the database.
    """
    base = f"http://127.0.0.1:{port}"
    already = len(fake.sent)
    commands_before = database_commands(base)
    fake.hold_sends()
    rows = (
        Row(
            MESSAGES,
            (f"Bearer {token}", "application/json"),
            json.dumps(
                {"contact_id": contact_ids[n % len(contact_ids)], "content": f"backlog {n}"}
            ),
        )
        for n in range(count)
    )
    load = drive(base, ("Authorization", "Content-Type"), rows, workdir, pid=pid)
    assert load.acked == count, load
    cpu_before = {p: cpu_seconds(p) for p in (pid, db_pid) if p is not None}
    released = time.monotonic()
    fake.hold_sends(False)
    # Five a second at worst: a slow drain is a figure to report, not a crash.
    last = wait_for_sends(fake, already + count, timeout=max(120.0, count / 5))
    wait_for_empty_outbox(base, timeout=60)
    commands = database_commands(base) - commands_before
    cpu_us = {p: round(1e6 * (cpu_seconds(p) - before) / count) for p, before in cpu_before.items()}
    figures = {
        "dispatch_gateway_cpu_us_per_message": cpu_us[pid],
        "dispatch_db_cpu_us_per_message": cpu_us.get(db_pid or -1, 0),
    }
    return figures | {
        "enqueue_burst_rps": round(load.rps),
        "enqueue_burst_p99_ms": round(load.p99_ms, 2),
        "dispatch_per_second": round(count / (last - released)),
        "round_trips_per_message": round(commands / count, 2),
    }


def metrics(base: str) -> str:
    with urllib.request.urlopen(base + "/metrics", timeout=10) as response:  # noqa: S310
        return response.read().decode()


def database_commands(base: str) -> float:
    total = 0.0
    for line in metrics(base).splitlines():
        if line.startswith("gateway_database_commands_total{"):
            total += float(line.split()[-1])
    return total


def wait_for_empty_outbox(base: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while "gateway_outbox_depth 0.0" not in metrics(base).splitlines():
        if time.monotonic() > deadline:
            raise RuntimeError(f"outcomes were still unrecorded after {timeout} s")
        time.sleep(0.05)
