"""What the benchmarks share: a database, a gateway process, timing and reporting."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from storage.embedded import EmbeddedServer
from testkit.helpers import free_port
from testkit.processes import launch, stop

JWT_SECRET = "bench-secret-" + "b" * 40


def wait_for_port(port: int, process: subprocess.Popen, failure: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(failure) from None
            time.sleep(0.05)


@contextlib.contextmanager
def ceiling() -> Iterator[tuple[int, int]]:
    """The bare Tornado handler (bench/ceiling.py) in its own process: ``(port, pid)``."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.ceiling", str(port)])
    try:
        wait_for_port(port, process, "the bare Tornado server did not start")
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(15)


@contextlib.contextmanager
def database(workdir: Path) -> Iterator[tuple[str, str, int | None]]:
    """``(uri, label, pid)``: MONGODB_URI if set (no pid), else an embedded server on disk."""
    if os.environ.get("MONGODB_URI"):
        yield os.environ["MONGODB_URI"], "MongoDB at MONGODB_URI", None
        return
    server = EmbeddedServer(str(workdir / "db"), workdir=workdir)
    uri = server.start(60)
    try:
        yield uri, "embedded secantusdb", server.pid
    finally:
        server.stop()


def gateway_config(
    workdir: Path,
    database_name: str,
    *,
    uri: str | None,
    port: int = 0,
    channels: str = "[]",
    storage_options: str = "",
) -> Path:
    """The config of a bench's gateway: on ``uri``, or (None) on its own embedded
    database in ``workdir/gateway-data``, as an operator runs it; ``storage_options``
    are more of the storage section's keys, as YAML flow items."""
    config = workdir / "bench-config.yaml"
    more = f", {storage_options}" if storage_options else ""
    storage = (
        f"{{uri: '{uri}', database: {database_name}{more}}}"
        if uri
        else f"{{database: {database_name}{more}}}"
    )
    config.write_text(
        f"data_dir: {workdir / 'gateway-data'}\n"
        f"server: {{port: {port}}}\n"
        f"storage: {storage}\n"
        f"auth: {{jwt_secret: {JWT_SECRET}}}\n"
        "log: {level: WARNING}\n"
        f"channels: {channels}\n"
    )
    return config


@contextlib.contextmanager
def gateway(
    uri: str | None,
    database_name: str,
    workdir: Path,
    *,
    channels: str = "[]",
    port: int | None = None,
    storage_options: str = "",
) -> Iterator[tuple[int, int]]:
    """A `bot-gateway serve` process on ``uri`` (None: its own embedded database, see
    :func:`gateway_config`); yields ``(port, pid)``.

    ``channels`` is the YAML of the config's channel list.
    """
    port = port or free_port()
    config = gateway_config(
        workdir, database_name, uri=uri, port=port, channels=channels,
        storage_options=storage_options,
    )  # fmt: skip
    process = launch("serve", "--config", str(config), log=workdir / "gateway.log")
    try:
        wait_for_port(port, process, "the gateway did not start; see gateway.log")
        yield port, process.pid
    finally:
        stop(process, 15)


class Api:
    """A keep-alive JSON client for sequential latency measurements."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.token: str | None = None

    def reconnect(self) -> None:
        """A fresh connection: the gateway closes one idle past its idle timeout."""
        self.connection.close()
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        payload = json.dumps(body) if body is not None else None
        try:
            self.connection.request(method, path, body=payload, headers=headers)
            response = self.connection.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            self.reconnect()  # closed while idle, before it read this request
            self.connection.request(method, path, body=payload, headers=headers)
            response = self.connection.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None

    def sign_up(self, username: str, password: str) -> None:
        self.call("POST", "/api/v1/agents/", {"username": username, "password": password})
        status, pair = self.call(
            "POST", "/auth/token/", {"username": username, "password": password}
        )
        assert status == 200, pair
        self.token = pair["access"]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary_ms(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(samples) * 1000, 2),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 2),
    }


def machine() -> str:
    return f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"


def workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="bot-gateway-bench-")
