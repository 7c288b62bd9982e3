"""The installed gateway at its edge: idle connections, its connection cap, and the
documented compose environment, each against a real `bot-gateway serve`."""

from __future__ import annotations

import json
import re
import resource
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from testkit.helpers import free_port, wait_until
from testkit.processes import STARTUP_SECONDS, http_status, launch, stop

ROOT = Path(__file__).resolve().parents[2]
IDLE = 900  # half-open connections a slow-loris attacker holds


def _start(workdir: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    # cwd like the image's /app: no config.yaml there, the packaged defaults
    return launch("serve", *args, log=workdir / "gateway.log", env=env, cwd=workdir)


def half_open(port: int, count: int, source: str = "127.0.0.2") -> list[socket.socket]:
    """Connections that began a request and will never finish its headers."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1000), hard))
    held = []
    for _ in range(count):
        # From another loopback address than the probes': max_connections_per_client
        # would refuse a probe from the attacker's own.
        sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
        sock.sendall(b"GET /api/v1/contacts/ HTTP/1.1\r\nHost: gw\r\nX-Slow: ")
        held.append(sock)
    return held


def closed(sock: socket.socket) -> bool:
    """Whether the gateway closed a connection that sent it nothing complete."""
    sock.settimeout(0.01)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def healthz_seconds(port: int) -> float:
    started = time.monotonic()
    assert http_status(f"http://127.0.0.1:{port}/healthz") == 200
    return time.monotonic() - started


def test_slow_loris_connections_neither_starve_probes_nor_flood_the_log(
    serve, tmp_path: Path
) -> None:
    port = serve({})
    held = half_open(port, IDLE)
    try:
        # Starved, a probe would wait for the idle timeout (10 s) to free a slot: well
        # under it is an answer, however busy the machine (how fast is bench/'s job).
        assert healthz_seconds(port) < 5.0
        assert http_status(f"http://127.0.0.1:{port}/readyz") == 200
    finally:
        for sock in held:
            sock.close()
    lines = (tmp_path / "gateway.log").read_text().splitlines()
    assert len(lines) < 100, lines[-5:]
    assert not any("Traceback" in line for line in lines)


def test_idle_connections_are_closed_and_the_cap_refuses_the_rest(serve, tmp_path: Path) -> None:
    per_client = {"max_connections": 100, "max_connections_per_client": 1000}
    port = serve({"server": {**per_client, "idle_timeout_seconds": 2}})
    held = half_open(port, 150)
    try:
        # The 50 past the cap are closed at once, the others once idle for 2 s.
        wait_until(lambda: sum(map(closed, held)) >= 50, 10, "the cap to close the rest")
        wait_until(lambda: all(map(closed, held)), 15, "idle connections to be closed")
        # Starved, a probe would wait for the idle timeout (10 s) to free a slot: well
        # under it is an answer, however busy the machine (how fast is bench/'s job).
        assert healthz_seconds(port) < 5.0
    finally:
        for sock in held:
            sock.close()
    log = (tmp_path / "gateway.log").read_text()
    assert 1 <= log.count("connections open: refusing more") <= 5  # once a second at most


def _compose_environment(port: int, data_dir: Path, **changes: str) -> dict[str, str]:
    """The gateway's environment as docker-compose.yml gives it with an empty .env,
    on the embedded database (no MongoDB here), with this test where Caddy stands."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = {}
    for name, value in compose["services"]["gateway"]["environment"].items():
        default = re.fullmatch(r"\$\{[A-Z_]+(?::-(?P<default>[^}]*))?\}", str(value))
        env[name] = default["default"] or "" if default else str(value)
    env.update(
        GATEWAY_HOST="0.0.0.0",  # noqa: S104 - as the image sets it
        GATEWAY_PORT=str(port),
        GATEWAY_DATA_DIR=str(data_dir),
        MONGODB_URI="embedded",
        PUBLIC_URL="https://gw.example.com",
        JWT_SECRET="compose-test-secret-" + "j" * 32,
        TRUSTED_PROXIES="127.0.0.1",
    )
    return {**env, **changes}


@pytest.mark.parametrize("mock_enabled", ["false", "true"])
def test_in_the_compose_environment_nothing_is_open(tmp_path: Path, mock_enabled: str) -> None:
    port = free_port()
    env = _compose_environment(port, tmp_path / "data", MOCK_ENABLED=mock_enabled)
    process = _start(tmp_path, env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_status(base + "/healthz") == 200, STARTUP_SECONDS, "/healthz")
        caddy = {"X-Forwarded-For": "198.51.100.7", "Content-Type": "application/json"}
        body = json.dumps({"contact_id": 7, "message": "let me in"}).encode()
        assert _post(base + "/webhooks/mock/mock/", body, caddy) == 404
        agent = json.dumps({"username": "mallory", "password": "x" * 12}).encode()
        assert _post(base + "/api/v1/agents/", agent, caddy) == 403
    finally:
        stop(process)
    log = (tmp_path / "gateway.log").read_text()
    assert "channel 'mock' (mock) is off" in log


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
