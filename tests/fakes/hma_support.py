"""Helpers for tests that talk to an HMA (the fake, or a real one): policies, hashes, matchers."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

from gate.matching.answer_cache import AnswerCache
from gate.matching.breaker import CircuitBreaker
from gate.matching.hma import HmaMatcher
from gate.matching.hma_client import HmaClient
from gate.policy.model import Hashing, Policy, Response, Rule
from gate.signals import SignalType
from gate.types import Hashes, PdqHash, Verdict

BASE_PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
OTHER_PDQ = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"


def flip(pdq: str, bits: int) -> str:
    """``pdq`` with its lowest ``bits`` bits inverted: exactly ``bits`` away."""
    return f"{int(pdq, 16) ^ ((1 << bits) - 1):064x}"


def hma_rule(
    name: str,
    action: Verdict,
    max_distance: int,
    banks: Iterable[str] | None = None,
    signals: Iterable[SignalType] | None = None,
    shadow: bool = False,
    sources: Iterable[str] = ("hma",),
) -> Rule:
    return Rule(
        name=name,
        action=action,
        sources=frozenset(sources),
        banks=None if banks is None else frozenset(banks),
        signal_types=None if signals is None else frozenset(signals),
        max_distance=max_distance,
        shadow=shadow,
    )


def make_policy(
    rules: Iterable[Rule],
    on_matcher_error: Verdict = Verdict.QUARANTINE,
    hma_banks: Iterable[str] | None = None,
    dihedral: bool = False,
) -> Policy:
    return Policy(
        version="test",
        rules=tuple(rules),
        on_unhashable=Verdict.QUARANTINE,
        on_unscannable=Verdict.FORWARD,
        on_matcher_error=on_matcher_error,
        on_log_failure=Verdict.FORWARD,
        on_low_quality=None,
        unscannable_by_type=(),
        allowlist_banks=frozenset(),
        reject_response=Response(400, "BlobRejected", "This upload is not allowed."),
        quarantine_response=Response(400, "BlobHeld", "This upload is held for review."),
        hashing=Hashing(dihedral=dihedral),
        hma_banks=None if hma_banks is None else frozenset(hma_banks),
    )


def image_hashes(*pdqs: str, body: bytes | None = None) -> Hashes:
    """Hashes of an image whose PDQ hashes (first: original, then dihedral) are ``pdqs``."""
    data = body if body is not None else "".join(pdqs).encode()
    transforms = ("original", "rotate90", "rotate180", "rotate270", "flipx", "flipy", "flipplus", "flipminus")
    return Hashes(
        sha256=hashlib.sha256(data).hexdigest(),
        md5=hashlib.md5(data).hexdigest(),
        sha1=hashlib.sha1(data).hexdigest(),
        cid="bafkreitest",
        size=len(data),
        media_type="image/jpeg",
        pdq=tuple(PdqHash(p, 100, t) for p, t in zip(pdqs, transforms, strict=False)),
    )


def video_hashes(body: bytes) -> Hashes:
    return Hashes(
        sha256=hashlib.sha256(body).hexdigest(),
        md5=hashlib.md5(body).hexdigest(),
        sha1=hashlib.sha1(body).hexdigest(),
        cid="bafkreivideo",
        size=len(body),
        media_type="video/mp4",
    )


def make_matcher(
    url: str,
    *,
    deadline: float = 3.0,
    timeout: float = 2.0,
    retries: int = 1,
    cache_size: int = 0,
    cache_ttl: float = 30.0,
    breaker: CircuitBreaker | None = None,
    clock: Callable[[], float] | None = None,
) -> HmaMatcher:
    client = HmaClient(url, connect_timeout=0.5, timeout=timeout, max_connections=8)
    cache = (
        AnswerCache(cache_size, cache_ttl)
        if clock is None
        else AnswerCache(cache_size, cache_ttl, clock=clock)
    )
    return HmaMatcher(
        client,
        deadline=deadline,
        request_timeout=timeout,
        retries=retries,
        concurrency=8,
        cache=cache,
        breaker=breaker or CircuitBreaker(1000, 60.0),
    )
