"""Stored blobs for ``POST /api/v1/scan {"did", "cid"}``: read from the PDS's ``com.atproto.sync.getBlob``
under the upload limit and the uploads' memory budget, and checked against their CID.

Trust boundary: the PDS is believed about which blobs a repo holds, never about which bytes a CID names:
the bytes are hashed and compared with the CID before they are judged, so nothing in between can make
the gate judge (and record) other bytes than the CID's. The DID and CID are checked against the shapes
the OpenAPI document gives them before they go into a URL. With GATE_PDS_ADMIN_PASSWORD the request
authenticates as the PDS's admin (so blobs of taken-down or deactivated repos can be judged too); the
password goes to the configured PDS only, never through an environment proxy, and is never logged. The
gate's own withholding (getBlob "not found" on the public listener) does not apply: the PDS is asked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re

import aiohttp
from yarl import URL

from gate.api.errors import NotFound
from gate.errors import InvalidRequest, PayloadTooLarge, UpstreamFailure, UpstreamTimeout
from gate.proxy.budget import Reservation
from gate.quarantine.withheld import cid_sha256

# The document's patterns (gate.api.spec): a did:plc or did:web, a CIDv1 raw sha2-256 in base32.
DID = r"^did:(plc:[a-z2-7]{24}|web:[a-zA-Z0-9._:%-]{1,253})$"
CID = r"^bafkrei[a-h][a-z2-7]{50}[aeimquy4]$"
_DID, _CID = re.compile(DID), re.compile(CID)
CHUNK = 1 << 16


class PdsBlobs:
    """``get(did, cid, reservation)`` over one aiohttp session, opened at first use."""

    def __init__(self, base: URL, *, max_bytes: int, admin_password: str | None, timeout: float) -> None:
        self.url = base / "xrpc" / "com.atproto.sync.getBlob"
        self.max_bytes = max_bytes
        # The blob as stored: never a compressed transfer the gate would have to undo first.
        self._headers = {"Accept-Encoding": "identity"}
        if admin_password:
            basic = base64.b64encode(f"admin:{admin_password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {basic}"
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=10)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, did: str, cid: str, reservation: Reservation) -> bytes:
        """The blob's bytes (checked against ``cid``), reserved against the budget as they arrive."""
        if not _DID.match(did):
            raise InvalidRequest("did must be a did:plc or did:web")
        if not _CID.match(cid):
            raise InvalidRequest("cid must be a CIDv1 raw sha2-256 in base32 (bafkrei…)")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, auto_decompress=False, trust_env=False
            )
        body = bytearray()
        try:
            async with self._session.get(
                self.url, params={"did": did, "cid": cid}, headers=self._headers
            ) as r:
                if r.status != 200:
                    raise _refusal(r.status, await r.content.read(4096), did, cid)
                if (r.content_length or 0) > self.max_bytes:
                    raise PayloadTooLarge(
                        f"the blob is larger than the upload limit ({self.max_bytes} bytes)"
                    )
                async for chunk in r.content.iter_chunked(CHUNK):
                    if len(body) + len(chunk) > self.max_bytes:
                        raise PayloadTooLarge(
                            f"the blob is larger than the upload limit ({self.max_bytes} bytes)"
                        )
                    reservation.grow_to(len(body) + len(chunk))
                    body += chunk
        except TimeoutError:
            raise UpstreamTimeout("the PDS did not send the blob in time") from None
        except aiohttp.ClientError:
            raise UpstreamFailure("the PDS could not be asked for the blob") from None
        if hashlib.sha256(body).hexdigest() != cid_sha256(cid):
            raise UpstreamFailure("the PDS's bytes for this CID do not match it; nothing was judged")
        return bytes(body)


def _refusal(status: int, raw: bytes, did: str, cid: str) -> Exception:
    """The PDS's answer as the API's: a blob or repo it does not have is 404, anything else 502."""
    try:
        error = str(json.loads(raw).get("error", ""))
    except (ValueError, AttributeError):
        error = ""
    if status in (400, 404) and error in ("InvalidRequest", "BlobNotFound", "RepoNotFound", "NotFound"):
        return NotFound(f"the PDS has no blob {cid} for {did}")
    if error in ("RepoTakendown", "RepoDeactivated", "RepoSuspended"):
        return NotFound(f"the PDS does not serve {did}'s blobs ({error}); set GATE_PDS_ADMIN_PASSWORD")
    return UpstreamFailure(f"the PDS answered HTTP {status} for the blob")
