"""X-Forwarded-For / X-Forwarded-Proto and the client IP, from a list of trusted front proxies.

Trust boundary: the PDS keys its rate limits on X-Forwarded-For and trusts it from loopback peers,
which the gate is. So a header sent by an arbitrary client must never reach the PDS unchanged: when
the peer is not a trusted proxy the gate overwrites both headers with what it saw itself.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from gate.settings import IpNetwork


@dataclass(frozen=True, slots=True)
class Forwarded:
    client_ip: str | None  # the client as best we know it (after trusted-proxy handling)
    x_forwarded_for: str
    x_forwarded_proto: str


class TrustedProxies:
    """The front proxies whose forwarding headers are believed (``GATE_TRUSTED_PROXIES``), made once per
    app. Answers are cached per address: parsing an address costs more than the rest of a request's
    forwarding work, and a connection's peer (a front proxy's, most often) is asked about on every
    request. Bounded, so a flood of distinct addresses only evicts."""

    def __init__(self, networks: tuple[IpNetwork, ...]) -> None:
        self.networks = networks
        self.trusts = functools.lru_cache(maxsize=4096)(self._trusts)

    def _trusts(self, addr: str | None) -> bool:
        if not addr:
            return False
        try:
            ip = ipaddress.ip_address(addr.strip().strip("[]"))
        except ValueError:
            return False
        return any(ip in net for net in self.networks)


def resolve(
    peer: str | None,
    xff: str | None,
    xfp: str | None,
    scheme: str,
    trusted: TrustedProxies,
) -> Forwarded:
    """Compute the headers to send upstream and the client IP to record."""
    peer_ip = peer or ""
    if not trusted.trusts(peer):
        return Forwarded(peer, peer_ip, scheme)
    hops = [h.strip() for h in (xff or "").split(",") if h.strip()]
    # Walk from the right: the first address that is not one of our proxies is the client.
    client = peer
    for hop in reversed(hops):
        client = hop
        if not trusted.trusts(hop):
            break
    chain = ", ".join([*hops, peer_ip]) if hops else peer_ip
    proto = (xfp or scheme).split(",")[0].strip().lower() or scheme
    return Forwarded(client, chain, proto)
