"""The embedded database hangs, then dies (``kill -9``), under webhook load.

Webhooks answer 503 within 5 s while it is away (so providers retry), the gateway
restarts it, they answer 200 again, and every acknowledged message is stored.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

from tornado.httpclient import HTTPClientError

from gateway.config import StorageConfig
from storage.database import Storage
from testkit.helpers import Client, async_wait_until, free_port
from testkit.processes import children, exited, launch, tail, until_ready

SECRET = "mock-secret-for-the-outage"
HUNG_SECONDS = 4.0


async def test_a_hung_then_killed_database_gives_quick_503s_and_is_restarted(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "data_dir": str(tmp_path / "data"),
                "server": {"port": port},
                "storage": {"timeout_seconds": 3},
                "log": {"level": "WARNING"},
                "channels": [{"name": "mock", "type": "mock", "secret": SECRET}],
            }
        )
    )
    gateway = launch("serve", "--config", str(config), log=tmp_path / "gateway.log")
    client = Client(f"http://127.0.0.1:{port}")
    answers: list[tuple[float, int, float, str]] = []  # (sent at, status, seconds, id)
    stop = asyncio.Event()

    async def load(worker: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            message_id = f"{worker}-{n}"
            body = json.dumps({"contact_id": worker, "message": "hi", "message_id": message_id})
            started = time.monotonic()
            try:
                status, _ = await client.fetch(
                    "POST",
                    "/webhooks/mock/mock/",
                    body=body,
                    headers={"X-Mock-Secret": SECRET, "Content-Type": "application/json"},
                )
            except (OSError, HTTPClientError):
                status = 0
            answers.append((started, status, time.monotonic() - started, f"{worker}:{message_id}"))

    try:
        await until_ready(client)
        [database] = children(gateway.pid)
        workers = [asyncio.create_task(load(w)) for w in range(6)]

        async def answered(count: int, status: int, after: float = 0.0) -> bool:
            return sum(1 for at, s, _, _ in answers if s == status and at >= after) >= count

        await async_wait_until(lambda: answered(50, 200), 30, "webhooks to be acknowledged")
        os.kill(database, signal.SIGSTOP)  # hung: it accepts nothing and answers nothing
        hung = time.monotonic()
        await async_wait_until(lambda: answered(6, 503, hung), 15, "503s while it hangs")
        # Held for the fault's length, not waiting for an event.
        await asyncio.sleep(max(0.0, HUNG_SECONDS - (time.monotonic() - hung)))
        assert (await client.fetch("GET", "/readyz"))[0] == 503
        os.kill(database, signal.SIGKILL)  # and now it dies
        killed = time.monotonic()
        await async_wait_until(lambda: answered(50, 200, killed), 30, "200s after the restart")
        stop.set()
        await asyncio.gather(*workers)
        # Ready once each worker the outage crashed has run STABLE_SECONDS since its
        # last restart, which its backoff may put off: no promise of a number here.
        await until_ready(client)
        [restarted] = children(gateway.pid)
        assert restarted != database
    finally:
        gateway.send_signal(signal.SIGTERM)
        code = await exited(gateway, 20)
        assert code == 0, tail(tmp_path / "gateway.log")

    statuses = {status for _, status, _, _ in answers}
    assert statuses <= {200, 503}, f"answers other than 200 and 503: {statuses}"
    slowest_503 = max(seconds for _, status, seconds, _ in answers if status == 503)
    assert slowest_503 <= 5.0, f"a 503 took {slowest_503:.1f} s"
    acknowledged = {key for _, status, _, key in answers if status == 200}
    storage = Storage.open(StorageConfig(), tmp_path / "data")
    try:
        stored = {
            f"{m['contact']['external_id']}:{m['external_id']}"
            for m in await storage.messages.collection.find(
                {}, {"contact.external_id": 1, "external_id": 1}
            ).to_list()
        }
    finally:
        await storage.close()
    missing = acknowledged - stored
    assert missing == set(), f"{len(missing)} acknowledged webhooks were not stored"
    log = (tmp_path / "gateway.log").read_text()
    assert "embedded database restarted" in log
