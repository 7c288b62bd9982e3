"""`bot-gateway serve` and `create-agent` as real processes on a real data dir."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from testkit.helpers import free_port, wait_until
from testkit.processes import (
    BOT_GATEWAY,
    STARTUP_SECONDS,
    Gateway,
    alive,
    call,
    children,
    http_status,
)


def test_serve_answers_probes_creates_agents_and_stops_cleanly(gateway: Gateway) -> None:
    process = gateway.start()
    assert http_status(gateway.url("/readyz")) == 200
    [db_pid] = children(process.pid)  # the embedded server, and nothing else

    created = gateway.create_agent("Ana", "correct horse")
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("created admin ana (")
    taken = gateway.create_agent("ana", "another password")
    assert (taken.returncode, taken.stderr.strip()) == (
        1,
        "bot-gateway: error: username 'ana' is taken",
    )
    short = gateway.create_agent("bob", "short")
    assert short.returncode == 1
    assert "password: must be at least 8 characters" in short.stderr
    # The first agent is the admin; the next are agents, unless --role says admin.
    assert gateway.create_agent("bob", "correct horse").stdout.startswith("created agent bob (")
    made = gateway.create_agent("cai", "correct horse", "--role", "admin")
    assert made.stdout.startswith("created admin cai ("), made.stderr
    wrong = gateway.create_agent("dee", "correct horse", "--role", "root")
    assert (wrong.returncode, "invalid choice: 'root'" in wrong.stderr) == (2, True)

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
    assert not alive(db_pid)
    assert "Traceback" not in gateway.log()

    # Restart on the same data dir: the agent is still there.
    restarted = gateway.start()
    assert http_status(gateway.url("/readyz")) == 200
    again = gateway.create_agent("ana", "correct horse")
    assert "username 'ana' is taken" in again.stderr
    restarted.send_signal(signal.SIGINT)
    assert restarted.wait(timeout=10) == 0


def test_reset_password_ends_the_agents_sign_ins_while_serving(gateway: Gateway) -> None:
    gateway.start()
    created = gateway.run("create-agent", "--username", "ana", "--display-name", "Ana Lima",
                          "--password-stdin", input="correct horse\n")  # fmt: skip
    assert created.returncode == 0, created.stderr
    base = gateway.url("")
    status, tokens = call(
        base, "POST", "/auth/token/", {"username": "ana", "password": "correct horse"}
    )
    assert status == 200

    reset = gateway.run("reset-password", "--username", "Ana", "--password-stdin",
                        input="battery staple\n")  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout.strip() == "password of ana changed; its earlier sign-ins have ended"
    assert call(base, "GET", "/api/v1/agents/", token=tokens["access"])[0] == 401
    assert call(base, "POST", "/auth/token/refresh/", {"refresh": tokens["refresh"]})[0] == 401
    assert (
        call(base, "POST", "/auth/token/", {"username": "ana", "password": "correct horse"})[0]
        == 401
    )
    new_password = {"username": "ana", "password": "battery staple"}
    status, fresh = call(base, "POST", "/auth/token/", new_password)
    assert status == 200
    status, agents = call(base, "GET", "/api/v1/agents/", token=fresh["access"])
    assert [a["display_name"] for a in agents["results"]] == ["Ana Lima"]  # --display-name

    unknown = gateway.run("reset-password", "--username", "zed", "--password-stdin", input="x" * 9)
    assert (unknown.returncode, unknown.stderr.strip()) == (
        1,
        "bot-gateway: error: no agent named 'zed'",
    )
    short = gateway.run("reset-password", "--username", "ana", "--password-stdin", input="short\n")
    assert short.returncode == 1
    assert "password: must be at least 8 characters" in short.stderr


def test_serve_works_from_an_empty_directory_outside_the_repository(tmp_path: Path) -> None:
    # No config file anywhere: the packaged defaults, with the data dir in ./data.
    port = free_port()
    log = (tmp_path / "gateway.log").open("ab")
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_CONFIG"}
    process = subprocess.Popen(
        [BOT_GATEWAY, "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        stdout=log,
        stderr=log,
        env=env,
    )
    log.close()
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_status(base + "/readyz") == 200, STARTUP_SECONDS, "/readyz")
        body = {"contact_id": "c1", "message": "hello from nowhere"}
        assert call(base, "POST", "/webhooks/mock/mock/", body)[0] == 200  # the default mock
        assert (tmp_path / "data" / "db").is_dir()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    assert "Traceback" not in (tmp_path / "gateway.log").read_text()


def test_create_agent_works_without_a_running_server(gateway: Gateway) -> None:
    created = gateway.create_agent("ana", "correct horse")
    assert created.returncode == 0, created.stderr
    # It started and stopped a server of its own, and left nothing advertised.
    assert not (gateway.workdir / "data" / "db.json").exists()
    gateway.start()
    assert "is taken" in gateway.create_agent("ana", "correct horse").stderr


def test_a_killed_gateway_takes_its_database_down_and_can_restart_at_once(
    gateway: Gateway,
) -> None:
    process = gateway.start()
    [db_pid] = children(process.pid)
    process.kill()
    process.wait()
    # Restarted at once, as a supervisor does: the orphaned database may still hold
    # the data dir while it stops (it got SIGTERM with its parent), and the new
    # gateway waits for it rather than refusing the data dir.
    gateway.start()
    assert not alive(db_pid)
    assert http_status(gateway.url("/readyz")) == 200
    assert "in use by another" not in gateway.log()
