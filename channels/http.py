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


async def capped(
    response: aiohttp.ClientResponse, max_bytes: int, server: str
) -> AsyncIterator[bytes]:
    """The response's body a chunk at a time, ended with a 413 as soon as it passes
    ``max_bytes`` (a provider that said less, or nothing); the response is released
    however it ends. A failure names ``server``, not the URL, which may hold a token."""
    read = 0
    try:
        async for chunk in response.content.iter_chunked(CHUNK):
            read += len(chunk)
            if read > max_bytes:
                raise MediaUnavailable(413, f"the file is over the {max_bytes}-byte limit")
            yield chunk
    except FAILURES as exc:
        raise MediaUnavailable(502, f"{server} failed ({type(exc).__name__})") from None
    finally:
        response.release()
