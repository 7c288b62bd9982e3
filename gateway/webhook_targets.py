"""Where outbound webhooks may go: public addresses only, unless the operator allows
private ones (local development), checked on the address actually connected to.

A subscription's URL is the admin's to choose, but a gateway inside a network must
not become a way to reach that network (metadata services on link-local addresses,
databases on loopback). A name is checked when it is resolved, at every connection,
so a name that resolves elsewhere later (DNS rebinding) is caught at that time.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class PrivateTarget(OSError):
    """The target resolved to an address webhooks may not go to."""


def is_public(address: Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is loopback too
    if mapped is not None:
        address = mapped
    return address.is_global and not address.is_multicast


def refused_url(url: str, allow_private: bool) -> str | None:
    """Why ``url`` cannot be a webhook target before anything is resolved, or None: an
    http(s) URL with a host, and no literal private address unless allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "an http:// or https:// URL with a host"
    if parts.username or parts.password:
        return "no credentials in the URL: the signature authenticates the gateway"
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return None  # a name: checked when it is resolved
    if not allow_private and not is_public(literal):
        return PRIVATE
    return None


PRIVATE = (
    "a private, loopback or link-local address; "
    "set subscriptions.allow_private_targets for local development"
)


@functools.cache
def _public_only_resolver() -> type[Any]:
    """The system's resolver, keeping only public addresses; none left is an error.
    Made on first use: aiohttp is imported only by a gateway that sends webhooks."""
    from aiohttp.abc import AbstractResolver, ResolveResult
    from aiohttp.resolver import DefaultResolver

    class PublicOnlyResolver(AbstractResolver):
        def __init__(self) -> None:
            self._inner = DefaultResolver()

        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            found = await self._inner.resolve(host, port, family)
            public = [r for r in found if is_public(ipaddress.ip_address(r["host"]))]
            if not public:
                # With an errno, aiohttp's connection error shows the reason (its strerror).
                raise PrivateTarget(errno.EACCES, f"{host} resolves to {PRIVATE}")
            return public

        async def close(self) -> None:
            await self._inner.close()

    return PublicOnlyResolver


class TargetClient:
    """The HTTP client deliveries go through: no redirect followed, a bounded read of
    the answer. Literal addresses skip the resolver in aiohttp, so each URL is checked
    with :func:`refused_url` before it is tried."""

    def __init__(self, allow_private: bool, timeout_seconds: float) -> None:
        self.allow_private = allow_private
        self.timeout_seconds = timeout_seconds
        self._session: Any = None

    async def post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str | None]:
        """The receiver's status (None: no answer) and what went wrong, if anything."""
        import aiohttp

        refused = refused_url(url, self.allow_private)
        if refused is not None:
            return None, f"refused: {refused}"
        if self._session is None:
            resolver = None if self.allow_private else _public_only_resolver()()
            connector = aiohttp.TCPConnector(resolver=resolver, limit=100, limit_per_host=4)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
                auto_decompress=False,
            )
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as answer:
                await answer.content.read(_ANSWER_READ)
                status = int(answer.status)
        except TimeoutError:
            return None, "no answer within the timeout"
        except (aiohttp.ClientError, OSError) as exc:
            return None, (str(exc) or type(exc).__name__)[:300]
        return status, None if 200 <= status < 300 else f"HTTP {status}"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


_ANSWER_READ = 4096  # bytes of a receiver's answer read, to keep the connection
