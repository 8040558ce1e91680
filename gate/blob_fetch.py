"""Reading what a PDS already stores: its sync API (``listRepos``, ``listBlobs``, ``getBlob``) and, when
the operator points at it, its disk blob store.

``upload-gate scan`` (``gate.scan``) enumerates and reads through it; anything else that must judge a
stored blob (a retro-hunt's evidence, the firehose watcher) fetches through ``BlobSource``.

Trust boundary: the PDS is believed about which repos and blobs exist, never about what bytes a CID
names: every blob is checked against its CID before it is judged, so a file swapped on disk or a proxy
in between cannot make the gate judge (and record, and take down) other bytes than the CID's. DIDs and
CIDs reach a file path only after they are parsed: nothing a repo holds can walk out of the blob store.
With the PDS's admin password the sync calls authenticate as admin, which is how deactivated and
taken-down repos are readable (the PDS refuses them to anyone else); the password goes only to the
configured PDS and is never logged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from yarl import URL

from gate.errors import Unavailable
from gate.quarantine.withheld import cid_sha256

PAGE = 500  # listRepos / listBlobs page size (the PDS's maximum is 1000)
# A DID as a directory name: the PDS writes <blobstore>/<did>/<cid>. did:plc and did:web (':'-separated,
# %-encoded ports) only; never '/', never a leading '.'.
_DID = re.compile(r"^did:[a-z]+:[A-Za-z0-9._:%-]{1,2000}$")
_CID = re.compile(r"^b[a-z2-7]{58}$")  # CIDv1 base32 sha2-256: how the PDS names blob files
# The PDS's refusals that are about the repo, not one blob (sync/util.ts assertRepoAvailability).
REPO_ERRORS = frozenset({"RepoNotFound", "RepoDeactivated", "RepoTakendown", "RepoSuspended"})
CONNECT_TIMEOUT = 10.0  # seconds to connect to the PDS, within each call's own limit
# getBlob's aiohttp limits: its total is the call's own deadline (``PdsSync.get_blob``), not aiohttp's.
_OWN_DEADLINE = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)


class BlobUnavailable(Unavailable):
    """A blob (or its whole repo) could not be read. ``kind`` is bounded, for counting; ``detail`` says
    what the PDS or the disk said (never bytes)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind  # unavailable | too_large | corrupt | missing | repo_unavailable | invalid
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Repo:
    """One account as ``listRepos`` lists it (every account, active or not)."""

    did: str
    rev: str
    active: bool
    status: str | None  # why not active: deactivated, takendown, suspended, deleted...


# Called with the bytes a blob is about to take (its declared length, its file's size, or the limit
# when it declares none) before any is read: where the reader waits for room in a memory budget.
Admit = Callable[[int], Awaitable[None]]


async def admit_off_the_clock(deadline: asyncio.Timeout, admit: Admit, size: int) -> None:
    """Wait for room for a blob of ``size`` with the PDS's ``deadline`` paused: waiting for room in the
    budget is not the PDS's time. After the wait the PDS has what it had left before it."""
    if deadline.expired():  # it fired as the headers came: its cancellation lands here, not in reschedule
        await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    when = deadline.when()
    assert when is not None, "a getBlob deadline is always set"
    left = when - loop.time()
    deadline.reschedule(None)
    await admit(size)
    deadline.reschedule(loop.time() + left)


async def _admit_nothing(size: int) -> None:
    return None


class BlobSource(Protocol):
    async def get_blob(self, did: str, cid: str, admit: Admit = _admit_nothing) -> bytes:
        """The blob's bytes, checked against ``cid``; ``BlobUnavailable`` saying why not. ``admit`` is
        awaited once, before the body is read."""
        ...


def check_names(did: str, cid: str) -> None:
    """Both names as the PDS writes them, or ``BlobUnavailable("invalid")``."""
    if not _DID.match(did) or ".." in did:
        raise BlobUnavailable("invalid", f"not a DID the gate reads: {did[:80]!r}")
    if not _CID.match(cid) or cid_sha256(cid) is None:
        raise BlobUnavailable("invalid", f"not a sha2-256 CIDv1: {cid[:80]!r}")


def verified(cid: str, body: bytes) -> bytes:
    """``body`` if it is the blob ``cid`` names, else ``BlobUnavailable("corrupt")``."""
    if hashlib.sha256(body).hexdigest() != cid_sha256(cid):
        raise BlobUnavailable("corrupt", "the bytes do not match their CID")
    return body


class PdsSync:
    """The PDS's sync API over one aiohttp session. Each call has ``timeout`` seconds of the PDS's time;
    for ``get_blob`` that excludes the wait in ``admit`` (for room in a memory budget, behind larger
    blobs), which is no fault of the PDS: a blob queued that long is still read, while a PDS that stalls
    before its headers or on the body is still ``unavailable`` (a ``TimeoutError``)."""

    def __init__(
        self,
        base: URL,
        *,
        admin_password: str | None = None,
        max_bytes: int,
        timeout: float = 60.0,
        connections: int = 8,
    ) -> None:
        self.base = base
        self.max_bytes = max_bytes
        self._headers: dict[str, str] = {}
        if admin_password:
            token = base64.b64encode(f"admin:{admin_password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self.timeout = timeout
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=CONNECT_TIMEOUT)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PdsSync:
        # trust_env off: the admin password must never go through an environment-configured proxy.
        connector = aiohttp.TCPConnector(limit=self._connections)
        self._session = aiohttp.ClientSession(timeout=self._timeout, connector=connector, trust_env=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("PdsSync is used outside its 'async with'")
        return self._session

    async def _json(self, method: str, params: dict[str, str]) -> dict[str, Any]:
        url = self.base / "xrpc" / method
        try:
            async with self.session.get(url, params=params, headers=self._headers) as resp:
                if resp.status != 200:
                    raise _refusal(resp.status, await resp.read())
                body: dict[str, Any] = await resp.json(content_type=None)
                return body
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise BlobUnavailable("unavailable", f"{method}: {type(exc).__name__}") from None

    async def list_repos(self) -> AsyncIterator[Repo]:
        """Every account of the PDS, active or not, in the PDS's order (creation time)."""
        cursor: str | None = None
        while True:
            params = {"limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
            page = await self._json("com.atproto.sync.listRepos", params)
            repos = page.get("repos") or []
            for raw in repos:
                if isinstance(raw, dict) and isinstance(raw.get("did"), str):
                    yield Repo(
                        raw["did"],
                        str(raw.get("rev") or ""),
                        bool(raw.get("active", True)),
                        raw.get("status"),
                    )
            cursor = page.get("cursor")
            if not repos or not isinstance(cursor, str):
                return

    async def list_blobs(self, did: str, since: str | None = None) -> AsyncIterator[list[str]]:
        """The CIDs of ``did``'s blobs that records reference (of records newer than rev ``since``), a
        page at a time, in CID order."""
        cursor: str | None = None
        while True:
            params = {"did": did, "limit": str(PAGE)}
            if since:
                params["since"] = since
            if cursor:
                params["cursor"] = cursor
            page = await self._json("com.atproto.sync.listBlobs", params)
            cids = [c for c in page.get("cids") or [] if isinstance(c, str)]
            if cids:
                yield cids
            cursor = page.get("cursor")
            if not cids or not isinstance(cursor, str):
                return

    async def get_blob(self, did: str, cid: str, admit: Admit = _admit_nothing) -> bytes:
        check_names(did, cid)
        url = self.base / "xrpc" / "com.atproto.sync.getBlob"
        # The PDS's time, not aiohttp's total: that would count ``admit``'s wait.
        deadline = asyncio.timeout(self.timeout)
        params = {"did": did, "cid": cid}
        try:
            async with (
                deadline,
                self.session.get(url, params=params, headers=self._headers, timeout=_OWN_DEADLINE) as resp,
            ):
                if resp.status != 200:
                    raise _refusal(resp.status, await resp.content.read(4096))
                if (resp.content_length or 0) > self.max_bytes:
                    raise BlobUnavailable("too_large", f"{resp.content_length} bytes > {self.max_bytes}")
                size = self.max_bytes if resp.content_length is None else resp.content_length
                await admit_off_the_clock(deadline, admit, size)
                body = bytearray()
                async for chunk in resp.content.iter_chunked(1 << 16):
                    body += chunk
                    if len(body) > self.max_bytes:  # a missing or lying Content-Length
                        raise BlobUnavailable("too_large", f"more than {self.max_bytes} bytes")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BlobUnavailable("unavailable", f"getBlob: {type(exc).__name__}") from None
        return verified(cid, bytes(body))

    async def repo_car(self, did: str, max_bytes: int) -> bytes:
        """The whole repo of ``did`` as a CAR (records and tree, no blobs): which record references which
        blob (``gate.repo_records``). At most ``max_bytes``, or ``BlobUnavailable("too_large")``."""
        url = self.base / "xrpc" / "com.atproto.sync.getRepo"
        try:
            async with self.session.get(url, params={"did": did}, headers=self._headers) as resp:
                if resp.status != 200:
                    raise _refusal(resp.status, await resp.content.read(4096))
                body = bytearray()
                async for chunk in resp.content.iter_chunked(1 << 16):
                    body += chunk
                    if len(body) > max_bytes:
                        raise BlobUnavailable("too_large", f"the repo is over {max_bytes} bytes")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BlobUnavailable("unavailable", f"getRepo: {type(exc).__name__}") from None
        return bytes(body)


def _refusal(status: int, raw: bytes) -> BlobUnavailable:
    """The PDS's XRPC error as a BlobUnavailable: the repo's own state, or this one blob's."""
    try:
        doc = json.loads(raw)
        error, message = str(doc.get("error", "")), str(doc.get("message", ""))[:200]
    except (ValueError, AttributeError):
        error, message = "", ""
    kind = "repo_unavailable" if error in REPO_ERRORS else "unavailable"
    return BlobUnavailable(kind, f"HTTP {status} {error}: {message}".strip())


class DiskBlobs:
    """The PDS's disk blob store (``PDS_BLOBSTORE_DISK_LOCATION``), read directly: ``<root>/<did>/<cid>``,
    as @atproto/pds's DiskBlobStore writes it (taken-down blobs move to ``<root>/quarantine/<did>/``,
    temporary uploads live in ``<root>/tempt/``: neither is read). Faster than getBlob and no load on the
    PDS process; the PDS's API still says which blobs exist."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    async def get_blob(self, did: str, cid: str, admit: Admit = _admit_nothing) -> bytes:
        check_names(did, cid)
        path = self.root / did / cid
        size = await asyncio.to_thread(self._size, path)
        await admit(size)
        # At most the admitted size (and a byte more, so that a file grown meanwhile fails its CID).
        return verified(cid, await asyncio.to_thread(self._read, path, size + 1))

    def _size(self, path: Path) -> int:
        with self._errors():
            size = path.stat().st_size
        if size > self.max_bytes:
            raise BlobUnavailable("too_large", f"{size} bytes > {self.max_bytes}")
        return size

    def _read(self, path: Path, most: int) -> bytes:
        with self._errors(), path.open("rb") as f:
            return f.read(most)

    @staticmethod
    @contextlib.contextmanager
    def _errors() -> Iterator[None]:
        try:
            yield
        except FileNotFoundError:
            raise BlobUnavailable("missing", "not in the blob store on disk") from None
        except OSError as exc:
            raise BlobUnavailable("unavailable", f"cannot read the file: {exc.strerror}") from None
