"""``Identities``: an author's DID → the PDS that holds its blobs (did:plc through the configured PLC
directory, did:web through the domain's ``/.well-known/did.json``), cached in a bounded LRU with a TTL,
one resolution per DID at a time. The document is fetched here, bounded, and read by the atproto SDK
(its DID-document validation and ``#atproto_pds`` lookup): the SDK's own resolvers read a response of
any size, follow its own client's defaults and keep clients they offer no way to close.

Trust boundary: a DID document is written by whoever controls the DID, so the PDS endpoint it names is
attacker-chosen, and the watcher is about to send it a request. An endpoint is used only when it is
https on a host name (never an IP literal, ``localhost`` or a ``.local``/``.internal`` name), or when its
origin is one the operator allowed — the gate's own PDS always is, and is reached at its internal address
(``GATE_UPSTREAM``) rather than through its public one. did:web names are held to the same rule before
their document is fetched. A document is at most ``MAX_DOCUMENT`` bytes, redirects are not followed
(a public name must not bounce the request to a private one), and the document must name the DID asked for.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
from collections.abc import Iterable

import aiohttp
from atproto_core.did_doc import DidDocument
from atproto_core.exceptions import AtProtocolError
from atproto_identity.did.resolvers.base_resolver import AsyncBaseResolver
from yarl import URL

from gate.errors import Refusal
from gate.ttl_cache import TtlCache

log = logging.getLogger(__name__)

CACHE_SIZE = 100_000
CACHE_TTL = 3600.0
FAILURE_TTL = 60.0  # a DID that did not resolve is asked again after a minute, not at every blob
PRIVATE_SUFFIXES = (".local", ".internal", ".localhost", ".home.arpa")
DID_SYNTAX = re.compile(r"did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]")  # atproto's DID syntax
MAX_DID = 2048
MAX_DOCUMENT = 64 * 1024  # real DID documents are under 2 KB


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
        self._plc = URL(str(plc_url).rstrip("/"))
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._own = (_origin(own_pds[0]), own_pds[1]) if own_pds else None
        self._allowed = {_origin(u) for u in allowed}
        if own_pds:
            self._allowed.add(_origin(own_pds[0]))
        self._found: TtlCache[str, URL] = TtlCache(size, ttl)
        self._failed: TtlCache[str, Unresolvable] = TtlCache(size, FAILURE_TTL)
        self._pending: dict[str, asyncio.Future[URL]] = {}

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

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

    def is_own(self, pds: URL) -> bool:
        """Whether ``pds`` (as ``pds_of`` answered) is the gate's own PDS."""
        return self._own is not None and pds == self._own[1]

    def allowed_endpoint(self, url: URL) -> bool:
        if _origin(url) in self._allowed:
            return True
        return url.scheme == "https" and public_host(url.host) and url.user is None

    async def _resolve(self, did: str) -> URL:
        if len(did) > MAX_DID or not DID_SYNTAX.fullmatch(did):
            raise Unresolvable(
                "unsupported", "not a DID (atproto's DID syntax)"
            )  # not echoed: stranger's text
        parts = did.split(":")
        method = parts[1] if len(parts) >= 3 else ""
        if method == "plc":
            where = self._plc / did
        elif method == "web":
            if len(parts) > 3:
                raise Unresolvable("unsupported", f"{did}: a did:web with a path is not an atproto DID")
            host, _, port = parts[2].replace("%3A", ":").replace("%3a", ":").partition(":")
            where = URL.build(scheme="https", host=host, port=int(port) if port.isdigit() else None)
            if not self.allowed_endpoint(where):
                raise Unresolvable("unsafe_endpoint", f"{did}: a did:web on a private or numeric host")
            where = where / ".well-known" / "did.json"
        else:
            raise Unresolvable("unsupported", f"{did}: only did:plc and did:web are resolved")
        doc = await self._document(did, where)
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

    async def _document(self, did: str, where: URL) -> DidDocument:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = bytearray()
        try:
            async with self._session.get(where, allow_redirects=False) as response:
                if response.status == 404:
                    raise Unresolvable("not_found", f"{did}: no DID document")
                if response.status != 200:
                    raise Unresolvable("error", f"{did}: {where.host} answered {response.status}")
                async for chunk in response.content.iter_chunked(16384):
                    body += chunk
                    if len(body) > MAX_DOCUMENT:
                        raise Unresolvable("error", f"{did}: the DID document is over {MAX_DOCUMENT} bytes")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unresolvable("error", f"{did}: {type(exc).__name__}") from None
        try:
            return AsyncBaseResolver.validate_did_doc(did, json.loads(body))
        except (ValueError, AtProtocolError) as exc:  # bad JSON, not a DID document, another DID's
            raise Unresolvable("error", f"{did}: not a DID document for it ({type(exc).__name__})") from None
