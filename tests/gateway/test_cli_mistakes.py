"""A user's mistakes at the installed command: one line naming what to fix, a
non-zero exit, and never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from testkit.processes import BOT_GATEWAY, Gateway


def _run(gateway: Gateway, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    command = gateway.command(*args[:1]) + list(args[1:])
    done = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        env={**os.environ, "TELEGRAM_BOT_TOKEN": "", **(env or {})}, check=False,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stderr.strip()


def test_create_agent_without_a_terminal_says_to_pipe_the_password(gateway: Gateway) -> None:
    code, said = _run(gateway, "create-agent", "--username", "ana")
    assert (code, said) == (
        1, "bot-gateway: error: no terminal to ask for the password on: pipe it in with "
        "--password-stdin",
    )  # fmt: skip


def test_serve_on_a_port_in_use_names_it(gateway: Gateway) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", gateway.port))
    taken.listen()
    try:
        code, said = _run(gateway, "serve")
    finally:
        taken.close()
    assert code == 1
    last = said.splitlines()[-1]
    assert last.startswith(f"bot-gateway: error: cannot listen on 127.0.0.1:{gateway.port}: ")
    assert "choose another with --port" in last


def test_webhook_commands_name_the_missing_setting(gateway: Gateway) -> None:
    code, said = _run(gateway, "set-webhook")  # the defaults: Telegram polls
    assert (code, said.splitlines()[-1]) == (
        1, "bot-gateway: error: no telegram channel in webhook mode: set TELEGRAM_MODE=webhook "
        "(channels[].mode)",
    )  # fmt: skip
    webhook = {"TELEGRAM_MODE": "webhook", "PUBLIC_URL": "https://gateway.example.com"}
    for command in ("set-webhook", "delete-webhook"):
        code, said = _run(gateway, command, env=webhook)
        assert code == 1
        assert said.splitlines()[-1] == (
            "bot-gateway: error: channel telegram: token not set (TELEGRAM_BOT_TOKEN is the "
            "default telegram channel's token)"
        )


def test_config_alone_names_its_subcommand(tmp_path: Path) -> None:
    done = subprocess.run(
        [BOT_GATEWAY, "config"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "the following arguments are required: show" in done.stderr
    assert "config_command" not in done.stderr
