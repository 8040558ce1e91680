"""``Reporter``: a match seen on the firehose reported to a moderation service (an Ozone instance, or
any service that takes ``com.atproto.moderation.createReport``), signed as the gate's labeler with
inter-service auth (``gate.labels.service_auth``).

The subject is the record (``com.atproto.repo.strongRef``: its URI and the CID of the version judged),
the reason names the rule and the decision, so a moderator can find the gate's evidence; never bytes,
hashes of other items, or anything the record did not already show. A report that cannot be delivered
is retried a few times, then logged and counted: it never holds up the stream (the decision, the
evidence and the labels are already written).
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from yarl import URL

from gate import metrics
from gate.labels.key import LabelerKey
from gate.labels.service_auth import service_jwt

log = logging.getLogger(__name__)

METHOD = "com.atproto.moderation.createReport"
REASON_TYPE = "com.atproto.moderation.defs#reasonViolation"
ATTEMPTS = 3


class Reporter:
    def __init__(
        self, service: URL, service_did: str, key: LabelerKey, labeler_did: str, *, timeout: float = 10.0
    ) -> None:
        self.url = service.with_path(f"/xrpc/{METHOD}")
        self.service_did = service_did
        self.key = key
        self.labeler_did = labeler_did
        self.timeout = timeout
        self.backoff = 1.0  # seconds before the second attempt; doubles
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def report(self, uri: str, cid: str | None, rule: str, decision_id: str) -> bool:
        """Report the record ``uri`` (version ``cid``); True once the service took it."""
        if self._session is None:
            raise RuntimeError("Reporter.start() has not run")
        if cid is None:  # a strongRef needs the version; the commit always names it
            metrics.FIREHOSE_REPORTS.labels("failed").inc()
            log.warning("report of %s not sent: the commit named no record CID", uri)
            return False
        body = {
            "reasonType": REASON_TYPE,
            "reason": f"upload-gate: rule {rule} matched a blob in this record (decision {decision_id})",
            "subject": {"$type": "com.atproto.repo.strongRef", "uri": uri, "cid": cid},
        }
        delay = self.backoff
        for attempt in range(1, ATTEMPTS + 1):
            # A token per attempt: each is short-lived and single-purpose.
            token = service_jwt(self.key, self.labeler_did, self.service_did, METHOD)
            try:
                async with self._session.post(
                    self.url, json=body, headers={"Authorization": f"Bearer {token}"}, allow_redirects=False
                ) as response:
                    if response.status == 200:
                        metrics.FIREHOSE_REPORTS.labels("sent").inc()
                        return True
                    answer = (await response.text())[:200]
                    retry = response.status >= 500 or response.status in (408, 429)
                    why = f"{response.status} {answer}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                retry, why = True, type(exc).__name__
            if not retry or attempt == ATTEMPTS:
                break
            await asyncio.sleep(delay)
            delay *= 2
        metrics.FIREHOSE_REPORTS.labels("failed").inc()
        log.warning("report of %s to %s not taken: %s", uri, self.url.origin(), why)
        return False
