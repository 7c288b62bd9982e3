"""SIGTERM under load: every acknowledged webhook is stored, and the process exits 0."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

from tornado.httpclient import HTTPClientError

from gateway.config import StorageConfig
from storage.database import Storage
from testkit.helpers import Client, async_wait_until, free_port
from testkit.processes import STARTUP_SECONDS, exited, launch

SECRET = "mock-secret-for-shutdown"


async def test_sigterm_mid_load_loses_no_acknowledged_webhook(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "data_dir": str(tmp_path / "data"),
                "server": {"port": port, "shutdown_grace_seconds": 10},
                "log": {"level": "WARNING"},
                "channels": [{"name": "mock", "type": "mock", "secret": SECRET}],
            }
        )
    )
    process = launch("serve", "--config", str(config), log=tmp_path / "gateway.log")
    client = Client(f"http://127.0.0.1:{port}")

    async def up() -> bool:
        try:
            return (await client.fetch("GET", "/healthz"))[0] == 200
        except OSError:
            return False

    await async_wait_until(up, STARTUP_SECONDS, "the gateway to start")
    acknowledged: list[str] = []
    stop = asyncio.Event()

    async def load(worker: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            message_id = f"{worker}-{n}"
            body = json.dumps({"contact_id": worker, "message": "hi", "message_id": message_id})
            try:
                status, _ = await client.fetch(
                    "POST",
                    "/webhooks/mock/mock/",
                    body=body,
                    headers={"X-Mock-Secret": SECRET, "Content-Type": "application/json"},
                )
            except (OSError, HTTPClientError):
                return  # the server closed the connection: this one was not acknowledged
            if 200 <= status < 300:
                acknowledged.append(json.dumps([str(worker), message_id]))  # its dedupe key
            elif status >= 500:
                return

    workers = [asyncio.create_task(load(w)) for w in range(8)]

    async def some_load() -> bool:
        return len(acknowledged) >= 50

    await async_wait_until(some_load, 30, "webhooks to be acknowledged")
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = await exited(process, 20)
    took = time.monotonic() - signalled
    stop.set()
    await asyncio.gather(*workers)
    assert code == 0
    assert took < 10 + 5  # the grace period, plus the embedded server's own stop

    storage = Storage.open(StorageConfig(), tmp_path / "data")
    try:
        stored = {
            m["dedupe_key"]
            for m in await storage.messages.collection.find({}, {"dedupe_key": 1}).to_list()
        }
    finally:
        await storage.close()
    missing = [key for key in acknowledged if key not in stored]
    assert missing == [], f"{len(missing)} acknowledged webhooks were not stored"
    assert len(stored) >= len(acknowledged) >= 50
