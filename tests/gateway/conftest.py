"""Fixtures of the tests that run the installed `bot-gateway serve`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.helpers import free_port, wait_until
from testkit.processes import STARTUP_SECONDS, http_status, launch, stop


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    """Start `bot-gateway serve` with a config of the test's; stopped by PID after."""
    started: list[subprocess.Popen[bytes]] = []

    def start(settings: dict) -> int:
        port = free_port()
        server = {"port": port, **settings.pop("server", {})}
        config = {"data_dir": str(tmp_path / "data"), "server": server, **settings}
        path = tmp_path / "config.yaml"
        path.write_text(json.dumps(config))
        started.append(
            launch("serve", "--config", str(path), log=tmp_path / "gateway.log", cwd=tmp_path)
        )
        url = f"http://127.0.0.1:{port}/healthz"
        wait_until(lambda: http_status(url) == 200, STARTUP_SECONDS, "/healthz to answer")
        return port

    yield start
    for process in started:
        stop(process)
