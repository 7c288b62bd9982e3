"""Who is calling: the client's address behind trusted proxies, and whether it is local.

``X-Forwarded-For`` is believed only as far as the peers that appended to it are
listed in ``server.trusted_proxies``: anyone else can write anything there. A call
counts as local only when its client is a loopback address and no untrusted hop
could have put it there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Forwarding headers we do not read: a proxy that sends them hides its client.
_UNREAD_FORWARDING = ("Forwarded", "X-Real-IP")
_FORWARDING = ("X-Forwarded-For", *_UNREAD_FORWARDING)


@lru_cache(maxsize=16)
def parse_networks(text: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 172.30.0.2"`` as networks; ValueError names a bad entry."""
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().removeprefix("::ffff:"))
    except ValueError:
        return None


def is_trusted(text: str, proxies: tuple[Network, ...]) -> bool:
    """Whether the address ``text`` is one of the trusted proxies."""
    address = _address(text)
    return address is not None and any(address in network for network in proxies)


def client_address(peer: str, headers: Mapping[str, str], proxies: tuple[Network, ...]) -> str:
    """The nearest address, right to left, that is not a trusted proxy."""
    hops = [peer]
    if proxies and is_trusted(peer, proxies):
        forwarded = headers.get("X-Forwarded-For", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()] + hops
    while len(hops) > 1 and is_trusted(hops[-1], proxies):
        hops.pop()
    return hops[-1][:64]  # attacker-chosen when a proxy passes it on: keep it small


def is_local(peer: str, headers: Mapping[str, str], proxies: tuple[Network, ...]) -> bool:
    """Whether the client is on this machine, with no untrusted proxy in between."""
    if any(name in headers for name in _UNREAD_FORWARDING):
        return False
    if "X-Forwarded-For" in headers and not is_trusted(peer, proxies):
        return False  # a proxy on this machine we were not told about
    address = _address(client_address(peer, headers, proxies))
    return address is not None and address.is_loopback


def from_loopback(peer: str, headers: Mapping[str, str]) -> bool:
    """Whether the peer itself is on this machine and relays nobody: no forwarding
    header at all, trusted proxy or not (a local proxy forwards the world)."""
    address = _address(peer)
    if address is None or not address.is_loopback:
        return False
    return not any(name in headers for name in _FORWARDING)
