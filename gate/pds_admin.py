"""``PdsAdmin``: the PDS's admin API, for account and blob takedowns (``com.atproto.admin.updateSubjectStatus``)
and whether a blob is taken down already (``com.atproto.admin.getSubjectStatus``).

Trust boundary: the admin password is the PDS's master key. It is sent only to the configured PDS (never
to a URL taken from a request), only as ``Basic admin:<password>``, and never logged. Callers must pass a
*verified* DID: this class does not know claims from identities, ``Takedowns`` does.
"""

from __future__ import annotations

import base64
import json
import logging

import aiohttp
from yarl import URL

from gate.errors import Unavailable
from gate.settings import Settings

log = logging.getLogger(__name__)


class PdsActionError(Unavailable):
    """The PDS refused or could not be reached; the message is safe to show a reviewer."""


class PdsAdmin:
    def __init__(self, base: URL, password: str, timeout: float = 10.0) -> None:
        self.base = base
        token = base64.b64encode(f"admin:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> PdsAdmin | None:
        """The PDS's admin API, or None when ``GATE_PDS_ADMIN_PASSWORD`` is not set (no takedowns)."""
        if not settings.pds_admin_password:
            return None
        return cls(settings.pds_admin_base, settings.pds_admin_password)

    async def take_down_account(self, did: str, ref: str) -> None:
        """Apply a takedown to the whole repo of ``did``; ``ref`` is kept by the PDS (our audit reference)."""
        await self._take_down({"$type": "com.atproto.admin.defs#repoRef", "did": did}, ref)
        log.warning("took down account %s on the PDS (ref %s)", did, ref)

    async def take_down_blob(self, did: str, cid: str, ref: str) -> None:
        """Take one blob of ``did``'s repo down: the PDS stops serving it (getBlob answers "Blob not
        found"), moves its file to its quarantine directory and refuses it if uploaded again."""
        await self._take_down({"$type": "com.atproto.admin.defs#repoBlobRef", "did": did, "cid": cid}, ref)
        log.warning("took down blob %s of %s on the PDS (ref %s)", cid, did, ref)

    async def blob_takedown(self, did: str, cid: str) -> str | None:
        """The ref of the takedown the PDS holds on ``did``'s blob ``cid`` ("" if it keeps none), or None
        when the blob is not taken down. The PDS answers ``{"takedown": {"applied": false}}`` for a blob it
        stores and serves, and 400 ``NotFound`` for a blob or repo it does not have: nothing is taken
        down there either. PdsActionError when it cannot say (unreachable, any other answer)."""
        url = (self.base / "xrpc" / "com.atproto.admin.getSubjectStatus").with_query(did=did, blob=cid)
        status, text = await self._call("GET", url)
        if status == 400 and _error_name(text) == "NotFound":
            return None
        if status != 200:
            raise PdsActionError(f"the PDS answered {status}: {text[:200]}")
        try:
            takedown = json.loads(text).get("takedown")
        except (ValueError, AttributeError):
            raise PdsActionError(f"the PDS's subject status is not a JSON object: {text[:200]}") from None
        if not isinstance(takedown, dict) or takedown.get("applied") is not True:
            return None  # no status attribute at all is "not taken down" in the lexicon
        return str(takedown.get("ref") or "")

    async def _take_down(self, subject: dict[str, str], ref: str) -> None:
        body = {"subject": subject, "takedown": {"applied": True, "ref": ref}}
        url = self.base / "xrpc" / "com.atproto.admin.updateSubjectStatus"
        status, text = await self._call("POST", url, body)
        if status != 200:
            raise PdsActionError(f"the PDS answered {status}: {text[:200]}")

    async def _call(self, method: str, url: URL, body: object = None) -> tuple[int, str]:
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout)) as s:
                async with s.request(method, url, json=body, headers=self._headers) as resp:
                    return resp.status, await resp.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PdsActionError(f"the PDS admin API is unreachable: {type(exc).__name__}") from None


def _error_name(text: str) -> str | None:
    """The ``error`` of an XRPC error body, None when it is not one."""
    try:
        body = json.loads(text)
    except ValueError:
        return None
    name = body.get("error") if isinstance(body, dict) else None
    return name if isinstance(name, str) else None
