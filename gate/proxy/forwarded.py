"""X-Forwarded-For / X-Forwarded-Proto and the client IP, from a list of trusted front proxies.

Trust boundary: the PDS keys its rate limits on X-Forwarded-For and trusts it from loopback peers,
which the gate is. So a header sent by an arbitrary client must never reach the PDS unchanged: when
the peer is not a trusted proxy the gate overwrites both headers with what it saw itself.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from gate.settings import IpNetwork


@dataclass(frozen=True, slots=True)
class Forwarded:
    client_ip: str | None  # the client as best we know it (after trusted-proxy handling)
    x_forwarded_for: str
    x_forwarded_proto: str


def _is_trusted(addr: str | None, trusted: tuple[IpNetwork, ...]) -> bool:
    if not addr:
        return False
    try:
        ip = ipaddress.ip_address(addr.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in net for net in trusted)


# Answers cached per address: parsing an address costs more than the rest of the request's forwarding
# work, and a connection's peer (a front proxy's, most often) asks on every request. Bounded, so a flood
# of distinct addresses only evicts. One cache for the trusted list last asked about, found by identity:
# a process has one list (its settings'), and hashing the list's networks on every request would cost
# what the cache saves.
class _Cache:
    trusted: tuple[IpNetwork, ...] | None = None
    check: Callable[[str | None], bool] = staticmethod(bool)


def _trusted(addr: str | None, trusted: tuple[IpNetwork, ...]) -> bool:
    if _Cache.trusted is not trusted:
        _Cache.check = functools.lru_cache(maxsize=4096)(functools.partial(_is_trusted, trusted=trusted))
        _Cache.trusted = trusted
    return _Cache.check(addr)


def resolve(
    peer: str | None,
    xff: str | None,
    xfp: str | None,
    scheme: str,
    trusted: tuple[IpNetwork, ...],
) -> Forwarded:
    """Compute the headers to send upstream and the client IP to record."""
    peer_ip = peer or ""
    if not _trusted(peer, trusted):
        return Forwarded(peer, peer_ip, scheme)
    hops = [h.strip() for h in (xff or "").split(",") if h.strip()]
    # Walk from the right: the first address that is not one of our proxies is the client.
    client = peer
    for hop in reversed(hops):
        client = hop
        if not _trusted(hop, trusted):
            break
    chain = ", ".join([*hops, peer_ip]) if hops else peer_ip
    proto = (xfp or scheme).split(",")[0].strip().lower() or scheme
    return Forwarded(client, chain, proto)
