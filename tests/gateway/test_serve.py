"""`bot-gateway serve` and `create-agent` as real processes on a real data dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_until


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local URL
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _children(pid: int) -> list[int]:
    """Direct children of ``pid``, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent's wait is missing.
    return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


class Gateway:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.config = workdir / "config.yaml"
        self.config.write_text(f"data_dir: {workdir / 'data'}\nserver:\n  port: {self.port}\n")
        self.process: subprocess.Popen[bytes] | None = None

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "gateway", *args, "--config", str(self.config)]

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.workdir / "gateway.log").open("ab")
        self.process = subprocess.Popen(self.command("serve"), stdout=log, stderr=log)
        log.close()
        wait_until(lambda: _get(self.url("/healthz")) == 200, 20, "/healthz to answer 200")
        return self.process

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def create_agent(self, username: str, password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command("create-agent"), "--username", username, "--password-stdin"],
            input=password + "\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def log(self) -> str:
        return (self.workdir / "gateway.log").read_text()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(tmp_path)
    yield gw
    if gw.process is not None and gw.process.poll() is None:
        gw.process.kill()
        gw.process.wait()


def test_serve_answers_probes_creates_agents_and_stops_cleanly(gateway: Gateway) -> None:
    process = gateway.start()
    assert _get(gateway.url("/readyz")) == 200
    [db_pid] = _children(process.pid)  # the embedded server, and nothing else

    created = gateway.create_agent("Ana", "correct horse")
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("created agent ana (")
    taken = gateway.create_agent("ana", "another password")
    assert (taken.returncode, taken.stderr.strip()) == (
        1,
        "bot-gateway: error: username 'ana' is taken",
    )
    short = gateway.create_agent("bob", "short")
    assert short.returncode == 1
    assert "password: must be at least 8 characters" in short.stderr

    # A second gateway on the same data dir refuses to start instead of corrupting it.
    other = subprocess.run(
        [*gateway.command("serve"), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert other.returncode == 1
    assert f"is in use by another bot-gateway (pid {process.pid})" in other.stderr

    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert time.monotonic() - started < 10
    assert not _alive(db_pid)
    assert "Traceback" not in gateway.log()

    # Restart on the same data dir: the agent is still there.
    restarted = gateway.start()
    assert _get(gateway.url("/readyz")) == 200
    again = gateway.create_agent("ana", "correct horse")
    assert "username 'ana' is taken" in again.stderr
    restarted.send_signal(signal.SIGINT)
    assert restarted.wait(timeout=10) == 0


def test_create_agent_works_without_a_running_server(gateway: Gateway) -> None:
    created = gateway.create_agent("ana", "correct horse")
    assert created.returncode == 0, created.stderr
    # It started and stopped a server of its own, and left nothing advertised.
    assert not (gateway.workdir / "data" / "db.json").exists()
    gateway.start()
    assert "is taken" in gateway.create_agent("ana", "correct horse").stderr


def test_a_killed_gateway_takes_its_database_down_and_can_restart(gateway: Gateway) -> None:
    process = gateway.start()
    [db_pid] = _children(process.pid)
    process.kill()
    process.wait()
    wait_until(lambda: not _alive(db_pid), 15, "the orphaned database to exit")
    gateway.start()
    assert _get(gateway.url("/readyz")) == 200
