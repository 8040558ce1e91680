"""``Identities``: an author's DID → the PDS that holds its blobs, resolved by the atproto SDK
(``atproto_identity``: did:plc through the configured PLC directory, did:web through the domain's
``/.well-known/did.json``), cached in a bounded LRU with a TTL, one resolution per DID at a time.

Trust boundary: a DID document is written by whoever controls the DID, so the PDS endpoint it names is
attacker-chosen, and the watcher is about to send it a request. An endpoint is used only when it is
https on a host name (never an IP literal, ``localhost`` or a ``.local``/``.internal`` name), or when its
origin is one the operator allowed — the gate's own PDS always is, and is reached at its internal address
(``GATE_UPSTREAM``) rather than through its public one. did:web names are held to the same rule before
their document is fetched.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Iterable

from atproto_identity.did.resolver import AsyncDidResolver
from yarl import URL

from gate.errors import Refusal
from gate.ttl_cache import TtlCache

log = logging.getLogger(__name__)

CACHE_SIZE = 100_000
CACHE_TTL = 3600.0
FAILURE_TTL = 60.0  # a DID that did not resolve is asked again after a minute, not at every blob
PRIVATE_SUFFIXES = (".local", ".internal", ".localhost", ".home.arpa")


class Unresolvable(Refusal):
    """The author's blobs cannot be fetched: ``kind`` says why (bounded, for metrics)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind  # "unsupported" | "not_found" | "no_pds" | "unsafe_endpoint" | "error"


def _origin(url: URL) -> str:
    return str(url.origin()).lower()


def public_host(host: str | None) -> bool:
    if not host:
        return False
    name = host.strip("[]").lower().rstrip(".")
    try:
        ipaddress.ip_address(name)
        return False
    except ValueError:
        pass
    return "." in name and name != "localhost" and not name.endswith(PRIVATE_SUFFIXES)


class Identities:
    def __init__(
        self,
        plc_url: URL,
        *,
        own_pds: tuple[URL, URL] | None = None,
        allowed: Iterable[URL] = (),
        timeout: float = 5.0,
        size: int = CACHE_SIZE,
        ttl: float = CACHE_TTL,
    ) -> None:
        """``own_pds``: (its public URL, where the gate reaches it); ``allowed``: other origins that may
        be plain http or private (a lab network's PDS)."""
        self._resolver = AsyncDidResolver(plc_url=str(plc_url).rstrip("/"), timeout=timeout)
        self._own = (_origin(own_pds[0]), own_pds[1]) if own_pds else None
        self._allowed = {_origin(u) for u in allowed}
        if own_pds:
            self._allowed.add(_origin(own_pds[0]))
        self._found: TtlCache[str, URL] = TtlCache(size, ttl)
        self._failed: TtlCache[str, Unresolvable] = TtlCache(size, FAILURE_TTL)
        self._pending: dict[str, asyncio.Future[URL]] = {}

    async def aclose(self) -> None:
        """The SDK's resolvers each open an httpx client and offer no way to close it: closed here, by
        the attribute they keep it in, if they still do."""
        for method in getattr(self._resolver, "_methods", {}).values():
            client = getattr(method, "_client", None)
            if client is not None and hasattr(client, "aclose"):
                await client.aclose()

    async def pds_of(self, did: str) -> URL:
        """Where to fetch ``did``'s blobs; ``Unresolvable`` when nowhere safe."""
        hit = self._found.get(did)
        if hit is not None:
            return hit
        failed = self._failed.get(did)
        if failed is not None:
            raise failed
        pending = self._pending.get(did)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[URL] = asyncio.get_running_loop().create_future()
        self._pending[did] = future
        try:
            url = await self._resolve(did)
        except Unresolvable as exc:
            self._failed.put(did, exc)
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        else:
            self._found.put(did, url)
            future.set_result(url)
            return url
        finally:
            del self._pending[did]

    def allowed_endpoint(self, url: URL) -> bool:
        if _origin(url) in self._allowed:
            return True
        return url.scheme == "https" and public_host(url.host) and url.user is None

    async def _resolve(self, did: str) -> URL:
        method = did.split(":")[1] if did.count(":") >= 2 else ""
        if method not in ("plc", "web"):
            raise Unresolvable("unsupported", f"{did}: only did:plc and did:web are resolved")
        if method == "web":
            host = did.split(":")[2].replace("%3A", ":").split(":")[0]
            if not self.allowed_endpoint(URL.build(scheme="https", host=host)):
                raise Unresolvable("unsafe_endpoint", f"{did}: a did:web on a private or numeric host")
        try:
            doc = await self._resolver.resolve(did)
        except Exception as exc:
            raise Unresolvable("error", f"{did}: {type(exc).__name__}") from None
        if doc is None:
            raise Unresolvable("not_found", f"{did}: no DID document")
        endpoint = doc.get_pds_endpoint()
        if not endpoint:
            raise Unresolvable("no_pds", f"{did}: the DID document names no #atproto_pds")
        try:
            url = URL(str(endpoint))
        except ValueError:
            raise Unresolvable("no_pds", f"{did}: the PDS endpoint is not a URL") from None
        if not self.allowed_endpoint(url):
            raise Unresolvable("unsafe_endpoint", f"{did}: PDS endpoint {url.origin()} is not public https")
        if self._own is not None and _origin(url) == self._own[0]:
            return self._own[1]  # our own PDS: straight to it, not through its public front
        return url.origin()
