"""The upload path: ``read_body → judge → act → record``, in this order, here.

Each stage is explicit code, not a hook registry. The judge (``gate.judge``: hash → match → evaluate,
shared with every other path that judges bytes) returns an immutable Decision; this module carries it
out. Trust boundary: everything about the request is attacker-controlled; the only things believed are
the bytes themselves (hashed and sniffed by the judge), the operator's policy, and the PDS's own answer
about the caller (see ``UploadPipeline``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web

from gate import metrics
from gate.auth.credential import Credential
from gate.auth.offline import OfflineCheck, Outcome
from gate.errors import AuthMissing, BlockedUpload, EvidenceUnavailable, LogUnavailable, Overloaded, XrpcError
from gate.judge import Context, Judge, Judgement, Timer
from gate.proxy.body import BodyReader
from gate.proxy.budget import MemoryBudget, Reservation
from gate.proxy.forwarded import Forwarded
from gate.proxy.upstream import Upstream
from gate.quarantine.withheld import WithheldBlobs
from gate.record import DecisionRecord, DecisionSink, new_decision_id
from gate.store.pool import StoreUnavailable
from gate.store.retention import Retention
from gate.store.vault import EvidenceCapped, Vault, held_while_kept
from gate.types import Decision, DecisionSource, Uploader, Verdict

log = logging.getLogger("gate.decisions")


# From the PDS's acceptance of a probe onto the gate's block answer.
PASSED_ON = ("DPoP-Nonce",)


def accepted(status: int | None) -> bool:
    """Whether the PDS's answer says it accepted the caller (and, for a forward, stored the upload)."""
    return status is not None and 200 <= status < 300


@dataclass
class Attempt:
    """What is known about one upload so far; becomes its DecisionRecord whatever happens."""

    fwd: Forwarded
    credential: Credential
    declared_type: str | None
    target: str  # the request's origin form: what the PDS receives (gate.proxy.target)
    id: str = field(default_factory=new_decision_id)
    time: datetime = field(default_factory=DecisionRecord.now)
    context: Context = field(default_factory=lambda: Context(DecisionSource.UPLOAD))
    judged: Judgement | None = None
    upstream_status: int | None = None
    verified: bool = False  # the PDS accepted this credential (forwarded upload or empty-body probe)
    # Headers of the PDS's acceptance that the client needs on the gate's own answer: the next DPoP
    # nonce (an OAuth client tracks it from every answer, as it would from the PDS's).
    pds_headers: dict[str, str] = field(default_factory=dict)
    evidence_error: str | None = None

    @property
    def timer(self) -> Timer:
        return self.context.timer

    @property
    def uploader(self) -> Uploader:
        cred = self.credential
        if not self.verified or cred.claimed_did is None:
            # Names no DID: an unproven claim is attacker-written text, never an attribution.
            return Uploader(did=None, method=cred.kind.value)
        return Uploader(cred.claimed_did, cred.kind.value, verified_how="pds", claimed_did=cred.claimed_did)

    def record(self, error: str | None) -> DecisionRecord:
        judged = self.judged
        return DecisionRecord(
            id=self.id,
            time=self.time,
            source=self.context.source,
            client_ip=self.fwd.client_ip,
            uploader=self.uploader,
            declared_type=self.declared_type,
            hashes=judged.hashes if judged else None,
            decision=judged.decision if judged else None,
            verdict=judged.decision.verdict if judged else None,
            timings_ms=dict(self.timer.stages),
            upstream_status=self.upstream_status,
            error=error,
            cached=judged.cached if judged else False,
        )


class UploadPipeline:
    """Trust boundary, in the order the stages run:

    1. No ``Authorization``: answered unread (the PDS's own AuthMissing).
    2. With the PDS's secret (``offline``), a credential the gate can prove invalid is answered unread,
       with the PDS's own refusal (asked with an empty body).
    3. The body is read and judged (``gate.judge``: hashed, matched, evaluated). A verdict to forward
       goes to the PDS, which judges the credential itself; its answer is relayed.
    4. A block verdict is revealed only to a caller the PDS accepts: the same request with an empty
       body asks it. A refusal is relayed unchanged, exactly what a clean picture would have got.
    Until the PDS has accepted the caller, nothing is recorded about the body and no DID is named:
    no decision row, no evidence, no withheld blob, no verdict metric.
    """

    def __init__(
        self,
        judge: Judge,
        upstream: Upstream,
        sink: DecisionSink,
        *,
        body: BodyReader,
        budget: MemoryBudget,
        offline: OfflineCheck | None = None,
        evidence: Vault | None = None,
        withheld: WithheldBlobs | None = None,
    ) -> None:
        self.judge = judge
        self.upstream = upstream
        self.sink = sink
        self.body = body
        self.budget = budget  # upload bytes held at once, across every upload of the process
        self.offline = offline
        self.evidence = evidence
        self.withheld = withheld if withheld is not None else WithheldBlobs()

    async def handle(self, request: web.Request, fwd: Forwarded, target: str) -> web.StreamResponse:
        started = time.perf_counter()
        authorization = request.headers.get("Authorization", "").strip()
        if not authorization:
            # Answered unread and unscanned: an anonymous caller must not learn whether bytes are banked.
            metrics.UPLOAD_ERRORS.labels(AuthMissing.error).inc()
            metrics.UPLOAD_SECONDS.labels("error").observe(time.perf_counter() - started)
            raise AuthMissing()
        credential = Credential.parse(authorization, request.headers.getall("DPoP", []))
        # Only this same credential may be answered from its own earlier judgement of the same bytes
        # before they are hashed (a DPoP-nonce retry): the fingerprint stays in memory, never logged.
        scope = hashlib.sha256(authorization.encode()).digest()
        context = Context(DecisionSource.UPLOAD, repeat_scope=scope)
        attempt = Attempt(fwd, credential, request.headers.get("Content-Type"), target, context=context)
        if self.offline is not None and self.offline.check(credential, request.method, target) is (
            Outcome.REFUSED
        ):
            refusal = await self._ask_pds(request, fwd, attempt)
            if refusal is not None:
                metrics.UPLOAD_SECONDS.labels("refused").observe(time.perf_counter() - started)
                return refusal  # the body was never read
            self.offline.disagreed(credential)
        reservation = Reservation(self.budget)
        outcome = "error"  # what the caller got: a verdict, "refused" (the PDS's refusal) or an error
        try:
            body = await self.body.read(request, reservation)
            attempt.timer.lap("read")
            metrics.UPLOAD_BYTES.observe(len(body))
            judged = attempt.judged = await self.judge.judge(body, attempt.context)
            policy, decision = judged.policy, judged.decision
            if not self.sink.accepting() and policy.on_log_failure is Verdict.REJECT:
                # The decision could not be kept: the operator chose not to let unlogged uploads through.
                raise LogUnavailable()
            if decision.verdict is Verdict.FORWARD:
                response, attempt.upstream_status = await self.upstream.forward_upload(
                    request, body, fwd, target
                )
                attempt.timer.lap("forward")
                if not accepted(attempt.upstream_status):
                    metrics.CREDENTIAL_CHECKS.labels("pds", "refused").inc()
                    outcome = "refused"
                    return response  # relayed; nothing about the body is kept
                metrics.CREDENTIAL_CHECKS.labels("pds", "accepted").inc()
                attempt.verified = True
                self._count(decision)
                # Recorded right after the answer is written (the next turn of the loop), as an access
                # log is: the record is complete, and the uploader does not wait for its JSON.
                asyncio.get_running_loop().call_soon(self._record, attempt, None)
                outcome = "forward"
                return response
            if not attempt.verified:
                refusal = await self._ask_pds(request, fwd, attempt)
                if refusal is not None:
                    outcome = "refused"
                    return refusal
            self._count(decision)
            await self._keep_evidence(body, judged, attempt)
            answer = policy.response_for(decision.verdict)
            outcome = decision.verdict.value
            raise BlockedUpload(answer.status, answer.error, answer.message, headers=attempt.pds_headers)
        except XrpcError as exc:
            if isinstance(exc, BlockedUpload):
                self._record(attempt, attempt.evidence_error)
            else:
                metrics.UPLOAD_ERRORS.labels(exc.error).inc()
                # Evidence that could not be kept says why (its store, the budget), not just "retry".
                self._record(attempt, attempt.evidence_error or f"{exc.error}: {exc.message}")
            raise
        finally:
            reservation.release()
            metrics.UPLOAD_SECONDS.labels(outcome).observe(time.perf_counter() - started)

    async def _ask_pds(self, request: web.Request, fwd: Forwarded, attempt: Attempt) -> web.Response | None:
        """Whether the PDS accepts this caller, asked with the same request and an empty body: None when
        it does (the caller is then verified), else the PDS's refusal, to be relayed as it came."""
        response, status = await self.upstream.probe(request, fwd, attempt.target)
        attempt.timer.lap("probe")
        if accepted(status):
            metrics.CREDENTIAL_CHECKS.labels("pds", "accepted").inc()
            attempt.verified = True
            attempt.pds_headers = {h: response.headers[h] for h in PASSED_ON if h in response.headers}
            return None
        metrics.CREDENTIAL_CHECKS.labels("pds", "refused").inc()
        return response

    async def _keep_evidence(self, body: bytes, judged: Judgement, attempt: Attempt) -> None:
        """Blocked, for a caller the PDS accepted: withhold the blob from getBlob at once, and seal the
        bytes as evidence *before* the client is answered, so a quarantine never exists without its
        evidence unless the policy says so."""
        policy, verdict = judged.policy, judged.decision.verdict
        self.withheld.add(judged.hashes.sha256)
        if verdict is Verdict.REJECT and not policy.evidence.keep_rejected:
            return
        record = attempt.record(None)
        try:
            if self.evidence is None:
                raise StoreUnavailable("no evidence store")
            try:
                # Counted from before sealing until the INSERT is done or failed: a burst of large
                # blocked uploads holds its ciphertexts under the budget, as it held its bodies.
                async with self.budget.evidence_copy(held_while_kept(len(body))):
                    await self.evidence.keep(
                        record, body, Retention(policy.evidence.hold_days),
                        hourly_cap=policy.evidence.max_held_per_did_per_hour,
                    )  # fmt: skip
            except Overloaded:
                raise StoreUnavailable("the memory budget cannot hold its sealed copy") from None
        except EvidenceCapped as exc:
            metrics.EVIDENCE_STORED.labels(verdict.value, "capped").inc()
            attempt.evidence_error = f"evidence not kept: per-uploader cap ({exc})"
            log.warning("evidence for decision %s not kept: the uploader's hourly cap is reached", attempt.id)
        except StoreUnavailable as exc:
            metrics.EVIDENCE_STORED.labels(verdict.value, "failed").inc()
            attempt.evidence_error = f"EvidenceUnavailable: {exc}"
            log.error("evidence for decision %s not stored: %s", attempt.id, exc)
            if policy.evidence.on_store_failure == "unavailable":
                raise EvidenceUnavailable() from None
        else:
            metrics.EVIDENCE_STORED.labels(verdict.value, "stored").inc()
        finally:
            attempt.timer.lap("evidence")

    @staticmethod
    def _count(decision: Decision) -> None:
        metrics.DECISIONS.labels(decision.verdict.value, decision.reason).inc()
        metrics.RULE_HITS.labels(decision.rule, decision.verdict.value).inc()
        if decision.shadow is not None:
            metrics.SHADOW_HITS.labels(decision.shadow.verdict.value, decision.shadow.rule).inc()
        if decision.verdict is Verdict.FORWARD and not decision.full_scan:
            metrics.UNSCANNED_FORWARDS.labels(decision.reason).inc()
        for source, bank in sorted({(m.source, m.bank) for m in decision.matches}):
            metrics.BANK_DECISIONS.labels(decision.verdict.value, source, bank).inc()

    def _record(self, attempt: Attempt, error: str | None) -> None:
        record = attempt.record(error)
        if log.isEnabledFor(logging.INFO):  # the line costs a JSON encoding: only when someone reads it
            log.info("decision %s", json.dumps(record.to_log(), sort_keys=True))
        try:
            self.sink.submit(record)
        except Exception:  # the sink must not break an answered upload; it counts its own failures
            log.exception("decision sink refused record %s", attempt.id)
