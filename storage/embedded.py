"""The embedded MongoDB-compatible server (secantusdb) as a child process.

secantusdb is GPL-2.0-only, so it is never imported: we start it as a separate
program and talk to it over the MongoDB wire protocol only.

Only the gateway's own user can reach its data: the data directory is 0700, the
server writes its files with umask 077, and it requires authentication
(SCRAM-SHA-256) with a password generated once and kept in
``<data_dir>/db_credentials`` (0600). The server has no way to create its first
user while it requires authentication, so a new store is started once without
``--auth``, on loopback, to create it.

A data directory belongs to one gateway at a time. :class:`DataDirLock` takes an
exclusive ``flock`` on ``<data_dir>/gateway.lock``; the embedded server inherits the
locked descriptor, so the directory stays locked for as long as either process
lives. While it runs, the address of the server is advertised in
``<data_dir>/db.json`` so that commands such as ``create-agent`` can use the running
server instead of opening the same files a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import importlib.util
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from storage.errors import StorageUnavailable

_LISTENING = re.compile(rb"secantus listening on (?P<host>[0-9.]+):(?P<port>[0-9]+)")
_PR_SET_PDEATHSIG = 1
_INSTALL_HINT = (
    "the embedded database is not installed: run pip install -e '.[embedded]' "
    "or set MONGODB_URI to a MongoDB server"
)


class DataDirBusy(StorageUnavailable):
    """Another gateway process owns the data directory."""


class DataDirLock:
    """An exclusive, non-blocking lock on a gateway data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "gateway.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock; ``False`` if another process holds it."""
        private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    @property
    def fd(self) -> int:
        if self._fd is None:
            raise RuntimeError("lock not held")
        return self._fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing our descriptor releases the flock
            self._fd = None


def private_dir(path: Path) -> None:
    """Make ``path`` (and its parents) and let only its owner in."""
    path.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # not ours to change (a mount): its modes apply
        path.chmod(0o700)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by its owner only."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)


def advertisement_path(data_dir: Path) -> Path:
    return data_dir / "db.json"


def credentials(data_dir: Path, storage_path: str, timeout: float) -> tuple[str, str]:
    """The embedded server's (user, password), creating them with a new store."""
    path = data_dir / "db_credentials"
    if path.exists() and Path(storage_path).exists():
        try:
            saved = json.loads(path.read_text())
            return str(saved["user"]), str(saved["password"])
        except (OSError, ValueError, KeyError):
            pass  # unreadable: make new ones
    user, password = "gateway", secrets.token_urlsafe(32)
    server = EmbeddedServer(storage_path, workdir=data_dir)  # without --auth, this once
    uri = server.start(timeout)
    try:
        with MongoClient[dict[str, Any]](
            uri, serverSelectionTimeoutMS=int(timeout * 1000)
        ) as client:
            roles = [{"role": "root", "db": "admin"}]
            try:
                client.admin.command("createUser", user, pwd=password, roles=roles)
            except OperationFailure:  # the user exists (its password was lost): reset it
                client.admin.command("updateUser", user, pwd=password, roles=roles)
    except PyMongoError as exc:
        raise StorageUnavailable(f"could not set up the embedded database's user: {exc}") from None
    finally:
        server.stop()
    write_private(path, json.dumps({"user": user, "password": password}))
    return user, password


def read_advertised_uri(data_dir: Path, timeout: float) -> str:
    """The URI a running gateway advertises for its embedded server.

    Waits up to ``timeout`` seconds, since the owner writes the file only once its
    server accepts connections.
    """
    deadline = time.monotonic() + timeout
    path = advertisement_path(data_dir)
    while True:
        try:
            return str(json.loads(path.read_text())["uri"])
        except (OSError, ValueError, KeyError):
            if time.monotonic() >= deadline:
                raise DataDirBusy(
                    f"data dir {data_dir} is locked by another process that does not "
                    f"advertise a database in {path.name}"
                ) from None
        time.sleep(0.05)


def _prepare_child() -> None:
    os.umask(0o077)  # its files are the gateway user's alone
    # Linux: the server gets SIGTERM if the gateway dies without stopping it.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class EmbeddedServer:
    """One secantusdb process on a free 127.0.0.1 port."""

    def __init__(
        self,
        storage_path: str,
        *,
        workdir: Path,
        cache_size: str = "64M",
        inherit_fds: tuple[int, ...] = (),
        login: tuple[str, str] | None = None,
    ) -> None:
        """``login``: require authentication, as this (user, password)."""
        # Absolute paths: the server runs with the work dir as its current directory.
        self.storage_path = (
            storage_path if storage_path == ":memory:" else os.path.abspath(storage_path)
        )
        self.workdir = workdir.resolve()
        self.cache_size = cache_size
        self.inherit_fds = inherit_fds
        self.login = login
        self.log_path = self.workdir / "db.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.uri: str | None = None
        self.port = 0  # 0: the server picks a free one; a restart keeps it

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _launch(self) -> None:
        """Start the process; :meth:`_poll_ready` tells when it accepts connections."""
        if importlib.util.find_spec("secantus") is None:
            raise StorageUnavailable(_INSTALL_HINT)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Always pass --config: without it the server reads any secantusd.toml in
        # the working directory.
        config_path = self.workdir / "secantusd.toml"
        config_path.write_text("# Written by bot-gateway; settings come from its command line.\n")
        command = [
            sys.executable,
            "-m",
            "secantus",
            "--config",
            str(config_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),  # 0 at first: the server picks one and announces it in its log
            "--storage-path",
            self.storage_path,
            "--cache-size",
            self.cache_size,
            *(["--auth"] if self.login else []),
            # No oplog: nothing reads it (no change stream, no transaction; the
            # events are a collection the gateway tails), and keeping it, capped at
            # 100,000 entries, cost every write (measured: 150,000 messages stored in
            # 224 s standalone, 248 s with it; a send 30.1 ms against 31.8 ms).
            "--standalone",
        ]
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                pass_fds=self.inherit_fds,
                preexec_fn=_prepare_child,
                # glibc gives each of the server's threads an arena of its own (up to 8
                # per core); two keep its freed memory reusable instead of stranded.
                env={"MALLOC_ARENA_MAX": "2", **os.environ},
            )

    def _poll_ready(self) -> bool:
        """True once the server announced its port; raises if it died first."""
        assert self.process is not None
        if self.uri is not None:
            return True
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            match = _LISTENING.search(log.read())
        if match:
            # retryWrites=false: secantusdb records every retryable write and, past
            # 10,000 in 30 minutes, sorts them all on each write (tens of ms apiece).
            # Over loopback to one local server there is no failover to retry across.
            self.port = int(match["port"])
            who, auth = "", ""
            if self.login:
                who = f"{quote_plus(self.login[0])}:{quote_plus(self.login[1])}@"
                auth = "&authSource=admin"
            self.uri = (
                f"mongodb://{who}127.0.0.1:{self.port}/?directConnection=true"
                f"&retryWrites=false{auth}"
            )
            return True
        if self.process.poll() is not None:
            raise StorageUnavailable(
                f"the embedded database exited with code {self.process.returncode} "
                f"during start-up: {self._log_tail()}"
            )
        return False

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_bytes()[self._log_offset :].decode(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(line for line in lines.strip().splitlines()[-3:]) or "(empty log)"

    def start(self, timeout: float) -> str:
        """Launch the server and wait until it accepts connections; returns its URI.

        Blocking on purpose: it runs once, before anything is served, and must run on
        the main thread (the parent-death signal is tied to the thread that forks).
        """
        self._launch()
        deadline = time.monotonic() + timeout
        while not self._poll_ready():
            if time.monotonic() >= deadline:
                self.stop()
                raise StorageUnavailable(f"the embedded database did not start in {timeout:g} s")
            time.sleep(0.02)
        assert self.uri is not None
        return self.uri

    async def restart(self, within: float) -> str:
        """Start the server again after it exited, on the same port (so clients keep
        their URI), without blocking the event loop; returns its URI."""
        self.process, self.uri = None, None
        self._launch()
        deadline = time.monotonic() + within
        while not self._poll_ready():
            if time.monotonic() >= deadline:
                self.stop()
                raise StorageUnavailable(f"the embedded database did not start in {within:g} s")
            await asyncio.sleep(0.05)
        assert self.uri is not None
        return self.uri

    async def wait_exit(self) -> int | None:
        """Wait until the server process exits; its exit code (None if it was stopped)."""
        process = self.process
        if process is None:
            return None
        try:
            pidfd = os.pidfd_open(process.pid)
        except ProcessLookupError:  # reaped already
            return process.wait()
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()

        def readable() -> None:  # once the process has exited
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(pidfd, readable)
        try:
            await exited
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
        return process.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; always reaps the process."""
        process, self.process = self.process, None
        self.uri = None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
