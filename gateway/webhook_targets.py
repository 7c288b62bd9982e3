"""Where outbound webhooks may go: public addresses only, unless the operator allows
private ones (local development), checked on the address actually connected to.

A subscription's URL is the admin's to choose, but a gateway inside a network must
not become a way to reach that network (metadata services on link-local addresses,
databases on loopback). A name is checked when it is resolved, at every connection,
so a name that resolves elsewhere later (DNS rebinding) is caught at that time.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

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


class PublicOnlyResolver(AbstractResolver):
    """The system's resolver, keeping only public addresses; none left is an error."""

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


def target_session(allow_private: bool, timeout_seconds: float) -> aiohttp.ClientSession:
    """The HTTP client deliveries go through. Literal addresses skip the resolver in
    aiohttp: the sender checks those with :func:`refused_url` before each try."""
    resolver = None if allow_private else PublicOnlyResolver()
    connector = aiohttp.TCPConnector(resolver=resolver, limit=100, limit_per_host=4)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout_seconds),
        auto_decompress=False,
    )
