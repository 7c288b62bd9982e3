"""One HTTP client policy for every channel's provider calls (aiohttp, which aiogram
and twilio use already): one pooled session per channel with as many connections as
the gateway sends at once (``delivery.concurrency``), so a burst of sends does not
queue behind a small default pool; timeouts that cut a provider that hangs; and
downloads that stream a chunk at a time and stop at the size cap, never holding a
file in memory or reading on past the cap.

It loads aiohttp: a channel module imports it where it builds or uses a client, so
a gateway without such channels loads neither (tests/gateway/test_config.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

from channels.base import MediaUnavailable

CONNECT_SECONDS = 10.0
CALL_SECONDS = 30.0  # an API call: a send, a media lookup
DOWNLOAD_SECONDS = 60.0
CHUNK = 65_536
FAILURES = (aiohttp.ClientError, OSError, TimeoutError)


def provider_session(connections: int) -> aiohttp.ClientSession:
    """A session for one channel's provider; a call may set its own timeout."""
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    timeout = aiohttp.ClientTimeout(total=CALL_SECONDS, connect=CONNECT_SECONDS)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


def download_timeout() -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=DOWNLOAD_SECONDS, connect=CONNECT_SECONDS)


def refuse_declared_size(size: int | None, max_bytes: int) -> None:
    """A 413 before any byte is read, when the provider says the file is too big."""
    if size is not None and size > max_bytes:
        raise MediaUnavailable(413, f"the file is over the {max_bytes}-byte limit")


def capped(response: aiohttp.ClientResponse, max_bytes: int, server: str) -> AsyncIterator[bytes]:
    """The response's body a chunk at a time: a 413 at once if the provider declares
    more than ``max_bytes``, and as soon as the bytes pass it if it said less, or
    nothing; the response is released however it ends. A failure names ``server``,
    not the URL, which may hold a token."""
    try:
        refuse_declared_size(response.content_length, max_bytes)
    except MediaUnavailable:
        response.release()
        raise
    return _chunks(response, max_bytes, server)


async def _chunks(
    response: aiohttp.ClientResponse, max_bytes: int, server: str
) -> AsyncIterator[bytes]:
    try:
        async for chunk in up_to(response.content.iter_chunked(CHUNK), max_bytes, server):
            yield chunk
    finally:
        response.release()


async def up_to(chunks: AsyncIterator[bytes], max_bytes: int, server: str) -> AsyncIterator[bytes]:
    """``chunks`` ended with a 413 as soon as they pass ``max_bytes``; a failure of
    the connection is a 502 naming ``server`` (never the URL: it may hold a token)."""
    read = 0
    try:
        async for chunk in chunks:
            read += len(chunk)
            if read > max_bytes:
                raise MediaUnavailable(413, f"the file is over the {max_bytes}-byte limit")
            yield chunk
    except FAILURES as exc:
        raise MediaUnavailable(502, f"{server} failed ({type(exc).__name__})") from None
