"""``BlobFetcher``: one blob from its author's PDS (``com.atproto.sync.getBlob``), bounded.

Trust boundary: the PDS is any server on the network (``gate.firehose.identity`` decides which may be
asked at all). Its answer is read up to the gate's upload limit and no further, within a deadline; a
redirect is not followed (it could point anywhere); what comes back is judged only if its CID is the one
the record names (checked by the caller against the judge's own CID), so a PDS cannot have other bytes
judged in a record's name.

Memory: ``admit`` is awaited with the size the PDS declares (or the limit, when it declares none) once
the headers are in and before a byte of the body is read: where the watcher waits for room in its
budget (gate.firehose.watcher). The deadline (GATE_FIREHOSE_FETCH_TIMEOUT) is the PDS's time, before and
after that wait, not the wait itself: a blob that waits its turn behind larger ones is not lost to a
timeout its PDS did not cause.
"""

from __future__ import annotations

import asyncio

import aiohttp
from yarl import URL

from gate import metrics
from gate.blob_fetch import Admit, admit_off_the_clock
from gate.errors import Refusal


class FetchFailed(Refusal):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        # bounded, for metrics: "not_found" | "refused" | "http_5xx" | "redirect" | "too_large" |
        # "timeout" | "unreachable"
        self.kind = kind


class BlobFetcher:
    def __init__(self, max_bytes: int, timeout: float, *, connections: int = 32) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections, limit_per_host=8),
            # The total deadline is ``fetch``'s own (asyncio.timeout): it must stop while ``admit`` waits.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=min(self.timeout, 5.0)),
            auto_decompress=True,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def fetch(self, pds: URL, did: str, cid: str, admit: Admit) -> bytes:
        if self._session is None:
            raise RuntimeError("BlobFetcher.start() has not run")
        url = pds.with_path("/xrpc/com.atproto.sync.getBlob").with_query({"did": did, "cid": cid})
        deadline = asyncio.timeout(self.timeout)
        try:
            async with deadline, self._session.get(url, allow_redirects=False) as response:
                status = response.status
                if 300 <= status < 400:
                    raise FetchFailed("redirect", f"getBlob answered {status} (redirects are not followed)")
                if status in (400, 404) or status == 410:
                    # The PDS's "Blob not found" is a 400 InvalidRequest (taken down, deleted, never there).
                    raise FetchFailed("not_found", f"getBlob answered {status}")
                if status >= 500:
                    raise FetchFailed("http_5xx", f"getBlob answered {status}")
                if status != 200:
                    raise FetchFailed("refused", f"getBlob answered {status}")
                declared = response.content_length
                if declared is not None and declared > self.max_bytes:
                    raise FetchFailed("too_large", f"getBlob declared {declared} bytes")
                await admit_off_the_clock(deadline, admit, self.max_bytes if declared is None else declared)
                body = bytearray()
                async for chunk in response.content.iter_chunked(1 << 16):
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise FetchFailed("too_large", f"more than {self.max_bytes} bytes")
        except TimeoutError:
            raise FetchFailed("timeout", f"getBlob took longer than {self.timeout:g} s") from None
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            raise FetchFailed("unreachable", f"getBlob failed: {type(exc).__name__}") from None
        finally:
            metrics.FIREHOSE_FETCHES.inc()
        return bytes(body)
