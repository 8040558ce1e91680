"""The pace table: when a body still arriving is cut, and why."""

from __future__ import annotations

import math

from gate.proxy.pace import Pace


def test_nothing_sent_is_cut_at_the_idle_limit() -> None:
    pace = Pace(idle=15, min_rate=1024, grace=30)
    pace.start(100.0)
    assert pace.deadline() == (115.0, "idle")


def test_a_steady_body_at_the_minimum_rate_is_never_behind() -> None:
    pace = Pace(idle=15, min_rate=1000, grace=5)
    pace.start(0.0)
    for second in range(1, 600):
        pace.arrived(1000, float(second))
        when, _ = pace.deadline()
        assert when > second


def test_a_trickle_is_cut_by_the_rate_not_the_idle_limit() -> None:
    pace = Pace(idle=15, min_rate=1000, grace=5)
    pace.start(0.0)
    now = 0.0
    while (deadline := pace.deadline())[0] > now + 1:
        now += 1
        pace.arrived(500, now)  # half the rate: loses half a second of credit per second
    assert deadline[1] == "rate"
    assert 9 <= deadline[0] <= 10  # grace / (1 - 500/1000) = 10 s, less the last second's half-credit


def test_a_fast_start_buys_at_most_the_grace() -> None:
    pace = Pace(idle=15, min_rate=1000, grace=5)
    pace.start(0.0)
    pace.arrived(100_000_000, 1.0)  # 100 MB at once would be a day of credit
    assert pace.deadline() == (6.0, "rate")


def test_no_minimum_rate_leaves_only_the_idle_limit() -> None:
    pace = Pace(idle=15, min_rate=0, grace=5)
    pace.start(0.0)
    pace.arrived(1, 14.0)
    assert pace.deadline() == (29.0, "idle")
    assert not math.isinf(pace.deadline()[0])
