"""Concurrent uploads per client address, refused past the limit before a byte of the body is read.

Trust boundary: the address is the client's as ``gate.proxy.forwarded`` resolved it (the peer, or the
X-Forwarded-For hop behind a trusted front proxy), so a client cannot pick it. An IPv6 client is keyed
by its /64: a host is commonly given a whole /64, and keying single addresses would give it 2**64
slots. Counts are per gate process (with ``--workers``, per worker).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator

from gate import metrics
from gate.errors import TooManyUploads


def slot_key(client_ip: str | None) -> str:
    """The address an upload counts against: IPv4 as is, IPv6 by its /64."""
    try:
        ip = ipaddress.ip_address((client_ip or "").strip().strip("[]"))
    except ValueError:
        return client_ip or ""  # not an address (a unix socket): all such share one key
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class IpSlots:
    def __init__(self, limit: int) -> None:
        self.limit = limit  # 0 = no limit
        self._held: dict[str, int] = {}

    @contextlib.contextmanager
    def slot(self, client_ip: str | None) -> Iterator[None]:
        """Hold one of the address's slots for the whole upload; 429 when none is free."""
        key = slot_key(client_ip)
        held = self._held.get(key, 0)
        if self.limit and held >= self.limit:
            metrics.PER_IP_REFUSALS.inc()
            raise TooManyUploads()
        self._held[key] = held + 1
        try:
            yield
        finally:
            left = self._held[key] - 1
            if left:
                self._held[key] = left
            else:
                del self._held[key]
