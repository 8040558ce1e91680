"""The circuit breaker's state machine, driven by a fake clock."""

from __future__ import annotations

from gate.matching.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def state_now(breaker: CircuitBreaker) -> BreakerState:
    # A call, not the property: mypy narrows `breaker.state` after one assert and keeps it narrowed
    # across the record_* calls that change it, so a second assert on it would read as unreachable.
    return breaker.state


def test_consecutive_failures_open_it_and_a_success_in_between_resets_the_count() -> None:
    seen: list[BreakerState] = []
    breaker = CircuitBreaker(3, 5.0, clock=Clock(), on_change=seen.append)
    for _ in range(2):
        breaker.record_failure()
    breaker.record_success()
    for _ in range(2):
        breaker.record_failure()
    assert breaker.allow() and state_now(breaker) is BreakerState.CLOSED
    breaker.record_failure()
    assert state_now(breaker) is BreakerState.OPEN and not breaker.allow()
    assert seen == [BreakerState.OPEN]


def test_after_the_wait_exactly_one_probe_is_let_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 5.0, clock=clock)
    breaker.record_failure()
    clock.now = 4.9
    assert not breaker.allow()
    clock.now = 5.0
    assert state_now(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # the probe, then nobody while it is out
    breaker.record_success()
    assert state_now(breaker) is BreakerState.CLOSED and breaker.allow() and breaker.allow()


def test_a_failed_probe_opens_it_for_another_wait() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 5.0, clock=clock)
    breaker.record_failure()
    clock.now = 6.0
    assert breaker.allow()
    breaker.record_failure()
    assert not breaker.allow()
    clock.now = 10.9
    assert not breaker.allow()
    clock.now = 11.0
    assert breaker.allow()


def test_a_probe_that_told_nothing_lets_the_next_one_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 5.0, clock=clock)
    breaker.record_failure()
    clock.now = 5.0
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()
