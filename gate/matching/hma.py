"""``HmaMatcher``: an upload's hashes looked up in HMA (OpenMediaMatch) over HTTP.

Every distinct PDQ hash of the upload (every frame, the picture as displayed after its EXIF
orientation, all dihedral ones when the policy hashes them) and, for video, the file's MD5 as
``video_md5`` go to ``GET /m/lookup``, one hash per call (HMA has no batch lookup), concurrently, through
the gate-wide ``LookupQueue`` (``gate.matching.hma_queue``: a bounded number in flight, the rest queued
with their upload's deadline). An animation costs one lookup per distinct frame hash, all within the same
per-upload ``deadline``: lookups that do not finish are timeouts, and lookups HMA could not answer in
time at its current pace are not sent (``overloaded``); both are ``on_matcher_error``'s, never skipped.
The upload's SHA-256 is the ``seed`` so HMA's per-bank coinflip is deterministic. HMA matches anything
within 31 bits; the stricter per-bank limits are the policy's rules, applied by ``evaluate``.

Failure is a decision, never an accident: ``match`` never raises. Refused, timeout, 5xx, 503 not ready,
malformed answers, a 4xx for a hash the gate computed and an open breaker all come back as
``MatcherFailure`` values so the policy's ``on_matcher_error`` applies. The whole HMA step of one upload
is bounded by ``deadline``: a retry happens only when the deadline still leaves room for it.

(Over 300 lines on purpose: every HMA failure mode and its one decision, with the breaker, read together.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from gate import metrics
from gate.matching.answer_cache import AnswerCache, Hit
from gate.matching.breaker import BreakerState, CircuitBreaker
from gate.matching.hma_client import HmaCallError, HmaClient, HmaStatus
from gate.matching.hma_queue import Batch, HmaBusy, LookupQueue
from gate.policy.plan import Plan
from gate.settings import Settings
from gate.signals import MatchSource, SignalType
from gate.types import Hashes, Match, MatcherFailure, MatchResult
from gate.watch import every

log = logging.getLogger(__name__)

# Failures that say something about HMA's health (a 4xx only says something about one request, and
# "overloaded" about the gate's own queue: lookups it did not send).
SERVICE_FAILURES = frozenset({"refused", "timeout", "http_5xx", "not_ready", "malformed", "error"})
# A refused or dropped connection (often a pooled keep-alive HMA closed) is worth one more try;
# a timeout or an HTTP error answer is not: trying again would only spend the upload's deadline.
RETRYABLE = frozenset({"refused", "error"})


@dataclass(frozen=True, slots=True)
class _Outcome:
    signal: SignalType
    value: str
    hits: tuple[Hit, ...] = ()
    error: HmaCallError | None = None


class HmaMatcher:
    name: str = MatchSource.HMA

    def __init__(
        self,
        client: HmaClient,
        *,
        deadline: float = 3.0,
        request_timeout: float = 2.0,
        connect_timeout: float = 0.5,
        retries: int = 1,
        concurrency: int = 16,
        cache: AnswerCache | None = None,
        breaker: CircuitBreaker | None = None,
        status_interval: float | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.deadline = deadline
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self.cache = cache if cache is not None else AnswerCache(0, 1.0)
        self.breaker = breaker if breaker is not None else CircuitBreaker(3, 10.0)
        if self.breaker.on_change is None:
            self.breaker.on_change = _breaker_changed
        self.status_interval = status_interval
        self.queue = LookupQueue(concurrency)
        self._wall_clock = wall_clock
        self._status: HmaStatus | None = None
        self._poller: asyncio.Task[None] | None = None
        metrics.HMA_BREAKER_STATE.set(self.breaker.state)

    @classmethod
    def from_settings(cls, settings: Settings) -> HmaMatcher | None:
        """The matcher ``settings`` ask for, or None when ``GATE_HMA_URL`` is unset."""
        if settings.hma_url is None:
            return None
        client = HmaClient(
            str(settings.hma_url),
            connect_timeout=settings.hma_connect_timeout,
            timeout=settings.hma_timeout,
            max_connections=settings.hma_concurrency,
        )
        return cls(
            client,
            deadline=settings.hma_deadline,
            request_timeout=settings.hma_timeout,
            connect_timeout=settings.hma_connect_timeout,
            retries=settings.hma_retries,
            concurrency=settings.hma_concurrency,
            cache=AnswerCache(settings.hma_cache_size, settings.hma_cache_ttl),
            breaker=CircuitBreaker(settings.hma_breaker_failures, settings.hma_breaker_reset),
            status_interval=settings.hma_status_interval,
        )

    # ---- lifecycle and readiness -------------------------------------------------------------------

    async def start(self) -> None:
        """Read HMA's status once, then keep polling it every ``status_interval`` seconds."""
        await self.refresh_status()
        if self.status_interval is not None and self._poller is None:
            self._poller = asyncio.create_task(self._poll_status(self.status_interval))

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        await self.client.aclose()

    async def __aenter__(self) -> HmaMatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def refresh_status(self) -> HmaStatus:
        status = await self.client.status(within=self.request_timeout)
        if status != self._status:
            log.log(logging.INFO if status.ready else logging.WARNING, "HMA status: %s", status.detail)
        self._status = status
        metrics.HMA_READY.set(1 if status.ready else 0)
        return status

    async def _poll_status(self, interval: float) -> None:
        # A surprise is logged and the next probe goes on; readiness keeps the last answer.
        await every(interval, self.refresh_status, what="HMA status probe")

    @property
    def status(self) -> HmaStatus | None:
        """What GET /status said last (None before the first probe)."""
        return self._status

    def ready(self) -> bool:
        """HMA answered I-AM-ALIVE to the last probe (its index is loaded and fresh)."""
        return self._status is not None and self._status.ready

    async def readiness(self) -> tuple[bool, str]:
        """For /readyz: HMA's GET /status asked now (a poller's last answer can be seconds old) and the
        breaker as it stands. Open: not ready, whatever /status says (lookups are what failed).
        Half-open: as /status says; the next upload is the probe that closes it, and a probe must
        be able to arrive (a not-ready gate gets no uploads behind a load balancer)."""
        try:
            status = await self.refresh_status()
        except Exception as exc:  # never a 500 from /readyz
            return False, f"GET /status failed: {type(exc).__name__}"
        breaker = self.breaker.state
        if breaker is BreakerState.CLOSED:
            return status.ready, status.detail
        detail = f"{status.detail}; circuit breaker {breaker.name.lower().replace('_', '-')}"
        return status.ready and breaker is not BreakerState.OPEN, detail

    def version(self) -> str:
        """HMA's content can change at any time; the verdict cache must not outlive the answer cache."""
        return f"hma:{int(self._wall_clock() // max(self.cache.ttl, 1.0))}"

    # ---- matching ----------------------------------------------------------------------------------

    async def match(self, hashes: Hashes, plan: Plan) -> MatchResult:
        banks = plan.hma.banks
        # Every frame, orientation and dihedral variant of the upload, identical hashes asked once.
        queries = [(s, v) for s in plan.hma.signals for v in s.facts.values(hashes)]
        if banks == () or not queries:
            return MatchResult()  # no rule relies on HMA, or nothing HMA can look up
        outcomes: list[_Outcome] = []
        pending: list[tuple[SignalType, str]] = []
        for signal, value in queries:
            cached = self.cache.get(AnswerCache.key(signal, value, banks))
            metrics.HMA_CACHE.labels("miss" if cached is None else "hit").inc()
            if cached is None:
                pending.append((signal, value))
            else:
                metrics.HMA_LOOKUPS.labels("cached").inc()
                outcomes.append(_Outcome(signal, value, hits=cached))
        if pending:
            outcomes.extend(await self._ask(pending, banks, seed=hashes.sha256.lower()))
        return self._result(outcomes, hashes)

    async def _ask(
        self, pending: list[tuple[SignalType, str]], banks: tuple[str, ...] | None, seed: str
    ) -> list[_Outcome]:
        refusal = self._refusal()
        if refusal is not None:
            return [_Outcome(signal, value, error=refusal) for signal, value in pending]
        if not self.breaker.allow():
            error = HmaCallError("breaker_open", "HMA kept failing; not asked until the breaker's next probe")
            return [_Outcome(signal, value, error=error) for signal, value in pending]
        deadline = asyncio.get_running_loop().time() + self.deadline
        try:
            batch = self.queue.admit(len(pending), deadline)
        except HmaBusy as exc:
            self.breaker.release()  # nothing was asked: nothing learnt about HMA
            error = HmaCallError("overloaded", str(exc))
            return [self._count(_Outcome(signal, value, error=error)) for signal, value in pending]
        try:
            outcomes = await asyncio.gather(*(self._lookup(s, v, banks, seed, batch) for s, v in pending))
        except BaseException:
            self.breaker.release()  # cancelled (client gone, shutdown): a half-open probe must not stay out
            raise
        failed = {o.error.kind for o in outcomes if o.error is not None} & SERVICE_FAILURES
        answered = any(o.error is None for o in outcomes)
        # A timeout beside answered lookups is a busy HMA, which answers; any other failure counts.
        if failed - {"timeout"} or (failed and not answered):
            self.breaker.record_failure()
        elif answered:
            self.breaker.record_success()
        else:
            self.breaker.release()
        for outcome in outcomes:
            if outcome.error is None:
                self.cache.put(AnswerCache.key(outcome.signal, outcome.value, banks), outcome.hits)
        return outcomes

    def _refusal(self) -> HmaCallError | None:
        """Why HMA must not be asked right now, from its last /status answer."""
        status = self._status
        if status is not None and status.reachable and not status.ready:
            # A loaded-but-stale index still answers, but its "no match" cannot be trusted.
            return HmaCallError("not_ready", f"HMA GET /status: {status.detail}")
        return None

    async def _lookup(
        self, signal: SignalType, value: str, banks: tuple[str, ...] | None, seed: str, batch: Batch
    ) -> _Outcome:
        if signal.facts.problem(value) is not None:
            error = HmaCallError("error", f"the gate computed an invalid {signal.value} hash")
            return self._count(_Outcome(signal, value, error=error))
        loop = asyncio.get_running_loop()
        sent = False
        try:
            async with asyncio.timeout_at(batch.deadline), self.queue.slot(batch):
                attempt = 0
                while True:
                    started = time.perf_counter()
                    sent = True
                    try:
                        within = min(self.request_timeout, batch.deadline - loop.time())
                        hits = await self.client.lookup(signal, value, banks=banks, seed=seed, within=within)
                        self.queue.observe(time.perf_counter() - started)
                        return self._count(_Outcome(signal, value, hits=hits))
                    except HmaCallError as exc:
                        room = batch.deadline - loop.time() > self.connect_timeout
                        if exc.kind in RETRYABLE and attempt < self.retries and room:
                            attempt += 1
                            continue
                        return self._count(_Outcome(signal, value, error=exc))
                    finally:
                        metrics.HMA_LOOKUP_SECONDS.observe(time.perf_counter() - started)
        except HmaBusy as exc:
            return self._count(_Outcome(signal, value, error=HmaCallError("overloaded", str(exc))))
        except TimeoutError:
            if not sent:  # it waited in the gate's queue the whole time: HMA was busy, not failing
                detail = f"not sent: HMA was busy for the whole of the upload's {self.deadline:.3g}s deadline"
                return self._count(_Outcome(signal, value, error=HmaCallError("overloaded", detail)))
            detail = f"no answer within the upload's {self.deadline:.3g}s HMA deadline"
            error = HmaCallError("timeout", detail)
            return self._count(_Outcome(signal, value, error=error))

    @staticmethod
    def _count(outcome: _Outcome) -> _Outcome:
        label = outcome.error.kind if outcome.error else ("match" if outcome.hits else "no_match")
        metrics.HMA_LOOKUPS.labels(label).inc()
        return outcome

    def _result(self, outcomes: list[_Outcome], hashes: Hashes) -> MatchResult:
        matches: list[Match] = []
        errors: dict[str, list[HmaCallError]] = {}
        for outcome in outcomes:
            if outcome.error is not None:
                errors.setdefault(outcome.error.kind, []).append(outcome.error)
            origin = hashes.pdq_origin(outcome.value) if outcome.signal is SignalType.PDQ else None
            for hit in outcome.hits:
                matches.append(
                    Match(
                        source=MatchSource.HMA,
                        bank=hit.bank,
                        signal_type=outcome.signal,
                        distance=hit.distance,
                        content_id=str(hit.content_id),
                        query_hash=outcome.value,
                        frame=origin.frame if origin else None,
                        variant=origin.variant if origin else None,
                    )
                )
        failures = []
        for kind, errs in errors.items():
            metrics.HMA_FAILURES.labels(kind).inc()
            detail = f"{len(errs)} of {len(outcomes)} lookups: {errs[0].detail}"
            failures.append(MatcherFailure(matcher=self.name, kind=kind, detail=detail))
        return MatchResult(matches=tuple(matches), failures=tuple(failures))


def _breaker_changed(state: BreakerState) -> None:
    metrics.HMA_BREAKER_STATE.set(state)
    metrics.HMA_BREAKER_TRANSITIONS.labels(state.name.lower()).inc()
    # Opening is the news that needs a look; closing again is the good news after it.
    log.log(
        logging.INFO if state is BreakerState.CLOSED else logging.WARNING,
        "HMA circuit breaker is now %s",
        state.name.lower(),
    )
