"""Running `bot-gateway` as a real process, the way an operator does: :func:`launch`
is the one way tests and benchmarks start it, :func:`stop` ends it by its PID."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from testkit.helpers import Client, async_wait_until, free_port, wait_until

# A deadline, not a wait: on a busy machine start-up (aiogram's import, the embedded
# database) can take tens of seconds.
STARTUP_SECONDS = 60.0
# The installed console script, as an operator runs it (pip install puts it beside python).
BOT_GATEWAY = shutil.which("bot-gateway", path=str(Path(sys.executable).parent)) or "bot-gateway"


def launch(
    *args: str, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """``bot-gateway ARGS``, the installed command, its output appended to ``log``;
    ``env`` is added to this process's environment."""
    with log.open("ab") as out:  # the child keeps its own copy
        return subprocess.Popen(
            [BOT_GATEWAY, *args],
            stdout=out,
            stderr=out,
            env={**os.environ, **env} if env else None,
            cwd=cwd,
        )


def run_script(script: Path, *args: str, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``python SCRIPT ARGS`` (an example of ours, as its reader runs it), its output
    appended to ``log``; ``env`` is added to this process's environment."""
    with log.open("ab") as out:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, str(script), *args],
            stdout=out,
            stderr=out,
            env={**os.environ, **env},
        )


def stop(process: subprocess.Popen[bytes], grace: float = 20) -> int:
    """SIGTERM, and SIGKILL if it is still running after ``grace`` seconds; its exit code."""
    process.terminate()
    try:
        return process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


async def exited(process: subprocess.Popen[bytes], within: float) -> int:
    """Its exit code, polled with a deadline from a test's event loop."""

    async def done() -> bool:
        return process.poll() is not None

    await async_wait_until(done, within, f"process {process.pid} to exit")
    assert process.returncode is not None
    return process.returncode


def tail(log: Path, lines: int = 40) -> str:
    """The end of a process's log, for the message of an assertion about it."""
    text = log.read_text(errors="replace") if log.exists() else "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local URL
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def children(pid: int) -> list[int]:
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


def alive(pid: int) -> bool:
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
        self.config.write_text(f"server:\n  port: {self.port}\n")
        self.process: subprocess.Popen[bytes] | None = None

    def command(self, *args: str) -> list[str]:
        """The installed command, with the data dir given on the command line."""
        data_dir = str(self.workdir / "data")
        return [BOT_GATEWAY, *args, "--config", str(self.config), "--data-dir", data_dir]

    def start(self) -> subprocess.Popen[bytes]:
        self.process = launch(*self.command("serve")[1:], log=self.workdir / "gateway.log")
        healthy = lambda: http_status(self.url("/healthz")) == 200  # noqa: E731
        wait_until(healthy, STARTUP_SECONDS, "/healthz to answer 200")
        return self.process

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def create_agent(
        self, username: str, password: str, *more: str
    ) -> subprocess.CompletedProcess[str]:
        return self.run("create-agent", "--username", username, "--password-stdin", *more,
                        input=password + "\n")  # fmt: skip

    def run(self, *args: str, input: str = "") -> subprocess.CompletedProcess[str]:
        """Another command on this gateway's config and data dir, to its end."""
        command = self.command(*args[:1]) + list(args[1:])
        return subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=60, check=False
        )

    def log(self) -> str:
        return (self.workdir / "gateway.log").read_text()


def call(
    base_url: str, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    """One JSON request to a running gateway; returns ``(status, decoded body)``."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base_url + path, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    return status, json.loads(raw) if raw else None


async def until_ready(client: Client, within: float = STARTUP_SECONDS) -> None:
    """Poll ``/readyz`` until it answers 200."""

    async def ready() -> bool:
        try:
            return (await client.fetch("GET", "/readyz"))[0] == 200
        except OSError:
            return False

    await async_wait_until(ready, within, f"{client.base_url} to be ready")
