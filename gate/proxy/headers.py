"""Which headers cross the proxy. RFC 9110 §7.6.1: hop-by-hop headers are the connection's, not the
message's, so they are dropped in both directions, together with any header the Connection header
names. Forwarding headers from an untrusted client are replaced (see ``forwarded``).

Header values must be UTF-8 to cross (``not_utf8``). aiohttp decodes a value as UTF-8 with
surrogateescape and writes values as UTF-8 only: bytes of a value that are not UTF-8 (obs-text, such as
Latin-1) came out silently dropped, in both directions. They cannot be relayed unchanged, as nginx
would, so such a message is refused whole — a request with 400 ``InvalidRequest``, a PDS answer with
502 ``UpstreamFailure`` — never passed on altered. Valid UTF-8 (any script) passes byte for byte."""

from __future__ import annotations

import functools
import logging

from multidict import CIMultiDict, CIMultiDictProxy

from gate import metrics
from gate.errors import UpstreamFailure

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Connection",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)
# Set by the gate itself from what it saw; a client's copies are never passed on as they are.
FORWARDING = frozenset(("x-forwarded-for", "x-forwarded-proto", "forwarded", "x-real-ip"))


def _connection_named(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> set[str]:
    return {t.strip().lower() for v in headers.getall("Connection", []) for t in v.split(",") if t.strip()}


@functools.cache
def _skipped(drop: frozenset[str]) -> frozenset[str]:
    # Per set of extra names (a handful of module constants): built once, not per request.
    return HOP_BY_HOP | drop


def end_to_end(
    headers: CIMultiDictProxy[str] | CIMultiDict[str], drop: frozenset[str] = frozenset()
) -> CIMultiDict[str]:
    """A copy without hop-by-hop headers (and without ``drop``, lower-case names)."""
    skip = _skipped(drop)
    if "Connection" in headers:
        skip = skip | _connection_named(headers)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in skip:
            out.add(name, value)
    return out


def not_utf8(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> str | None:
    """The name of the first header whose value held bytes that are not UTF-8 (aiohttp turned each into
    a lone surrogate), or None when every value can be written back as it came."""
    for name, value in headers.items():
        if not value.isascii():  # the common case costs one scan in C
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return name
    return None


def relayable(headers: CIMultiDictProxy[str] | CIMultiDict[str], path: str) -> None:
    """A PDS answer whose header value is not UTF-8 cannot be relayed unchanged (the module's docstring):
    502, counted and logged with the header's name (never its value), before anything reaches the client."""
    name = not_utf8(headers)
    if name is not None:
        raise not_relayable(name, path)


def not_relayable(name: str, path: str) -> UpstreamFailure:
    """The 502 for a PDS answer whose header ``name`` is not UTF-8: counted and logged, to raise."""
    metrics.UPSTREAM_ERRORS.labels("bad_header").inc()
    log.warning("upstream answer to %s has a header that is not UTF-8: %s", path, name[:100])
    return UpstreamFailure("The PDS answered with a header value that is not UTF-8")
