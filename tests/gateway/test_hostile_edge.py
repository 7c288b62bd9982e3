"""Hostile clients against the installed `bot-gateway serve`: what no one client may
do to the running process (stall its loop, take its connection slots, keep streams
it should no longer have). The attacker calls from 127.0.0.2, the probe from
127.0.0.1: two client addresses on one machine."""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from testkit.helpers import wait_until
from tests.gateway.test_edge import closed, half_open, healthz_seconds

ATTACKER = "127.0.0.2"
MB = 1024 * 1024


def _call(port: int, method: str, path: str, body: dict | None = None, token: str = "") -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers=headers, method=method
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        text = response.read()
        return json.loads(text) if text else {}


def _agent_token(port: int) -> dict:
    """The first agent, created from this machine, signed in: its token pair."""
    _call(port, "POST", "/api/v1/agents/", {"username": "ana", "password": "correct horse"})
    return _call(port, "POST", "/auth/token/", {"username": "ana", "password": "correct horse"})


def _connect(port: int, timeout: float = 10) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(timeout)
    sock.bind((ATTACKER, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def _post_forever(port: int, path: str, body: bytes, stop: threading.Event, chunked: bool) -> None:
    """POST ``body`` again and again until ``stop``, on a fresh connection each time."""
    while not stop.is_set():
        try:
            sock = _connect(port)
        except OSError:
            continue
        with sock:
            head = f"POST {path} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            try:
                if chunked:
                    sock.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
                    for at in range(0, len(body), 64 * 1024):
                        part = body[at : at + 64 * 1024]
                        sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
                    sock.sendall(b"0\r\n\r\n")
                else:
                    sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
                sock.recv(4096)
            except OSError:
                pass  # refused mid-body: the next one starts


@pytest.fixture
def attackers() -> Iterator:
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(*targets: tuple) -> None:
        for target in targets:
            port, path, body, chunked = target
            thread = threading.Thread(
                target=_post_forever, args=(port, path, body, stop, chunked), daemon=True
            )
            thread.start()
            threads.append(thread)

    yield start
    stop.set()
    for thread in threads:
        thread.join(30)


def test_one_megabyte_bodies_on_public_routes_do_not_stall_the_loop(serve, attackers) -> None:
    port = serve({})
    values = b"[" + b"1," * (MB // 2 - 2) + b"1]"  # half a million values, under 1 MiB
    assert len(values) <= MB  # server.max_body_bytes: what is refused is the work
    long_password = json.dumps({"username": "u", "password": "p" * (MB - 64)}).encode()
    attackers(
        (port, "/auth/token/", long_password, False),
        (port, "/auth/token/refresh/", values, True),  # no Content-Length to refuse early
        (port, "/webhooks/mock/mock/", values, True),
        (port, "/api/v1/agents/", values, False),
    )
    seconds = [healthz_seconds(port) for _ in range(40)]
    assert statistics.median(seconds) <= 0.1, seconds


def test_one_address_cannot_take_every_connection_slot(serve) -> None:
    port = serve({})
    held = half_open(port, 1100, source=ATTACKER)  # more than max_connections (1000)
    try:
        assert healthz_seconds(port) <= 1.0
        # max_connections_per_client (256) are kept until idle; the rest closed at once.
        wait_until(lambda: sum(map(closed, held)) >= len(held) - 256, 20, "the cap")
    finally:
        for sock in held:
            sock.close()


def _open_stream(port: int, token: str, *, rcvbuf: int = 0) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.bind((ATTACKER, 0))
    sock.connect(("127.0.0.1", port))
    head = f"GET /api/v1/events/ HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\n"
    sock.sendall(head.encode() + b"\r\n")
    return sock


def _status(sock: socket.socket) -> int:
    """The answer's status; 0 for a connection refused past a cap."""
    head = b""
    while b"\r\n" not in head:
        try:
            part = sock.recv(1024)
        except OSError:
            return 0
        if not part:
            return 0
        head += part
    return int(head.split(b" ", 2)[1])


def _read_to_end(sock: socket.socket, within: float) -> bytes:
    """Everything the server writes until it closes, or fail after ``within`` s."""
    deadline = time.monotonic() + within
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            part = sock.recv(65536)
        except TimeoutError:
            break
        if not part:
            return data
        data += part
    pytest.fail(f"the stream was still open {within} s later; it had {len(data)} bytes")


def _mock(port: int, n: int) -> None:
    body = {"contact_id": n % 7, "message": f"message {n}", "message_id": n}
    _call(port, "POST", "/webhooks/mock/mock/", body)


def _ended(sock: socket.socket) -> bool:
    """Whether the server closed it (what it wrote before is read and dropped)."""
    sock.settimeout(0.001)
    try:
        while part := sock.recv(65536):
            del part
        return True
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:
        return True


def test_one_token_keeps_five_streams_and_one_agent_twenty(serve) -> None:
    port = serve({})
    token = _agent_token(port)["access"]
    streams = [_open_stream(port, token) for _ in range(300)]
    try:
        codes = [_status(sock) for sock in streams]
        assert healthz_seconds(port) <= 1.0
        # A newer stream of one sign-in ends its oldest (event: resume): five stay open.
        opened = [sock for sock, code in zip(streams, codes, strict=True) if code == 200]
        wait_until(lambda: sum(map(_ended, opened)) >= len(opened) - 5, 20, "five to remain")
        # Across sign-ins, one agent holds twenty at most: the rest are refused.
        more = [_open_stream(port, _sign_in(port)) for _ in range(5) for _ in range(5)]
        streams += more
        assert sorted(_status(sock) for sock in more).count(429) >= 5
    finally:
        for sock in streams:
            sock.close()


def _sign_in(port: int) -> str:
    pair = _call(port, "POST", "/auth/token/", {"username": "ana", "password": "correct horse"})
    return str(pair["access"])


def test_a_signed_out_stream_ends_at_once_while_events_keep_coming(serve) -> None:
    port = serve({})
    pair = _agent_token(port)
    stream = _open_stream(port, pair["access"])
    try:
        assert _status(stream) == 200
        for n in range(5):
            _mock(port, n)
        _call(port, "POST", "/auth/logout/", token=pair["access"])
        for n in range(5, 25):  # events keep coming after the sign-out
            _mock(port, n)
        seen = _read_to_end(stream, 10)
    finally:
        stream.close()
    assert b"message 4" in seen
    assert b"message 24" not in seen


def test_a_stream_that_stops_reading_is_closed_after_sign_out(serve) -> None:
    port = serve({"events": {"write_timeout_seconds": 2}})
    pair = _agent_token(port)
    stream = _open_stream(port, pair["access"], rcvbuf=4096)
    try:
        assert _status(stream) == 200
        for n in range(300):  # more than its small receive buffer takes
            _mock(port, n)
        _call(port, "POST", "/auth/logout/", token=pair["access"])
        _read_to_end(stream, 20)  # the server closed it; what it had sent drains first
    finally:
        stream.close()
