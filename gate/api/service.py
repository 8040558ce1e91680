"""``Api``: what the API's endpoints use, built from the gate's parts (``gate.deps``) by ``open_api``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gate.admin.tokens import Principal, TokenStore
from gate.api.blobs import PdsBlobs
from gate.api.errors import ApiUnavailable
from gate.api.rate import RateLimit
from gate.deps import Deps
from gate.judge import Judge
from gate.proxy.body import BodyLimits, BodyReader
from gate.proxy.budget import MemoryBudget
from gate.record import DecisionSink
from gate.store.audit import Audit
from gate.store.pool import Pool, StoreUnavailable

# A JSON body carries at most the upload limit's bytes as base64 (4 characters per 3 bytes), plus room
# for the rest of the object.
JSON_OVERHEAD = 64 * 1024
SMALL_BODY_BYTES = 64 * 1024  # a JSON body without bytes: 256 PDQ hashes and the rest, several times over


@dataclass
class Api:
    judge: Judge  # the one judge of the upload path: the same bytes get the same decision here
    sink: DecisionSink  # the decision log, for scans asked to be recorded
    budget: MemoryBudget  # the uploads' own budget: API bodies and uploads share it
    raw_bodies: BodyReader  # a body that is the bytes themselves: the upload limit
    json_bodies: BodyReader  # a JSON body with base64 bytes: the upload limit as base64
    small_bodies: BodyReader  # a JSON body without bytes (hashes)
    tokens: TokenStore
    audit: Audit
    pool: Pool
    rate: RateLimit
    blobs: PdsBlobs  # stored blobs, for scans by {did, cid}

    async def audited(self, who: Principal, action: str, subject: str | None, detail: dict[str, Any]) -> None:
        """The call's audit row, written before it is answered; 503 (and no answer) when it cannot be."""
        try:
            await self.audit.record(who.name, action, subject, {"role": who.role.value, **detail})
        except StoreUnavailable:
            raise ApiUnavailable() from None


API = web.AppKey("api", Api)


def open_api(deps: Deps) -> Api:
    settings, pool = deps.settings, deps.database.pool
    limits = BodyLimits.from_settings(settings)
    json_limits = dataclasses.replace(limits, max_bytes=-(-limits.max_bytes // 3) * 4 + JSON_OVERHEAD)
    return Api(
        judge=deps.judge,
        sink=deps.sink,
        budget=deps.budget,
        raw_bodies=BodyReader(limits),
        json_bodies=BodyReader(json_limits),
        small_bodies=BodyReader(dataclasses.replace(limits, max_bytes=SMALL_BODY_BYTES)),
        tokens=TokenStore(pool),
        audit=Audit(pool),
        pool=pool,
        rate=RateLimit(settings.api_rate, settings.api_burst),
        blobs=PdsBlobs(
            settings.upstream,
            max_bytes=settings.max_upload_bytes,
            admin_password=settings.pds_admin_password,
            timeout=settings.upstream_timeout,
        ),
    )
