"""The API's per-token rate limit: a burst, then one request per 1/rate seconds, each token on its own."""

from __future__ import annotations

from gate.api.rate import RateLimit


def test_a_burst_then_the_sustained_rate_each_token_its_own() -> None:
    now = [100.0]
    limit = RateLimit(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limit.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limit.take("a") == 0.5  # the next token comes in 1/rate seconds
    assert limit.take("b") == 0.0  # another token's bucket is full
    now[0] += 0.5
    assert limit.take("a") == 0.0
    assert limit.take("a") > 0
    now[0] += 60  # refills, but never beyond the burst
    assert [limit.take("a") for _ in range(4)][-1] > 0


def test_retry_after_is_whole_seconds_and_never_zero() -> None:
    assert [RateLimit.retry_after(w) for w in (0.01, 1.0, 1.2)] == ["1", "1", "2"]
