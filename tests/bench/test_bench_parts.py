"""The benchmark's own parts: the corpus comes from the three wheels, and a report is written as
Markdown and JSON. (The whole suite runs in CI as ``make bench-quick``.)"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from bench import corpus
from bench.decision_log import Sustained
from bench.report import Report


def test_corpus_photos_come_from_three_wheels() -> None:
    paths = corpus._photo_paths()
    assert all(p.is_file() for p in paths)
    owners = {next(part for part in p.parts if part in ("skimage", "sklearn", "matplotlib")) for p in paths}
    assert owners == {"skimage", "sklearn", "matplotlib"}


@pytest.mark.parametrize("fmt", corpus.FORMATS)
def test_samples_decode_at_their_size_and_format(fmt: str) -> None:
    sample = corpus.sample("china.jpg", "256px", fmt)
    with Image.open(io.BytesIO(sample.body)) as im:
        assert im.format == fmt
        assert im.size == corpus.SIZES["256px"]
    assert sample.media_type == corpus.MEDIA_TYPES[fmt]


def test_report_writes_markdown_and_json(tmp_path: Path) -> None:
    report = Report(quick=True)
    table = report.table("Hashing", ["upload", "ms"], note="a note")
    table.add(upload="12MP JPEG", ms=19.54)
    report.target("12 MP JPEG", "≤ 20 ms", "19.5 ms", True)
    report.target("throughput", "≥ 70 %", "50 %", False)
    md, js = report.write(tmp_path)
    text = md.read_text()
    assert "| 12MP JPEG | 19.5 |" in text
    assert "| throughput | ≥ 70 % | 50 % | **no** |" in text
    doc = json.loads(js.read_text())
    assert doc["quick"] is True and doc["machine"]["cores"]
    assert doc["tables"][0]["rows"] == [{"upload": "12MP JPEG", "ms": 19.54}]
    assert [t["met"] for t in doc["targets"]] == [True, False]


def test_the_benchmark_firehose_is_what_the_watcher_reads() -> None:
    """The generated stream decodes with the watcher's own decoder: one distinct image per post, after
    every ``NOISE`` likes, and every CID the PDS serves."""
    from bench import firehose
    from gate.firehose.events import CommitEvent, decode

    bodies = firehose.images(3)
    assert len(set(bodies)) == 3
    network = firehose.stream(bodies)
    events = [decode(f) for f in network.frames]
    assert all(isinstance(e, CommitEvent) for e in events)
    commits = [e for e in events if isinstance(e, CommitEvent)]
    assert [e.seq for e in commits] == list(range(1, 3 * (firehose.NOISE + 1) + 1))
    with_blobs = [e for e in commits if e.blobs]
    assert [e.seq % (firehose.NOISE + 1) for e in with_blobs] == [0, 0, 0]
    assert {e.blobs[0].cid for e in with_blobs} == set(network.blobs)
    assert {e.repo for e in with_blobs} <= network.dids
    with Image.open(io.BytesIO(bodies[0])) as im:
        assert (im.format, im.size) == ("JPEG", (1024, 768))


def test_the_firehose_benchmark_reads_the_watchers_counters() -> None:
    """Its probes read each counter (and label) the watcher counts, and nothing else's: a probe that
    read another would stall the benchmark until its timeout, or end it early."""
    from bench import firehose
    from gate import metrics

    before = (firehose._judged(), firehose._failed(), firehose._commits())
    metrics.FIREHOSE_BLOBS.labels("judged").inc(3)
    metrics.FIREHOSE_BLOBS.labels("failed").inc(2)
    metrics.FIREHOSE_BLOBS.labels("seen").inc(7)
    metrics.FIREHOSE_EVENTS.labels("commit").inc(5)
    metrics.FIREHOSE_EVENTS.labels("other").inc(11)
    after = (firehose._judged(), firehose._failed(), firehose._commits())
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 2, 5]


def test_nginx_balances_round_robin_and_logs_which_upstream_answered() -> None:
    import urllib.request

    from bench import nginx, procs

    if nginx.binary() is None:
        pytest.fail("nginx is not installed (tests/prereqs.sh installs nginx-light)", pytrace=False)
    with procs.upstream() as first, procs.upstream() as second, nginx.balancing([first, second]) as front:
        for _ in range(4):
            with urllib.request.urlopen(front.url + "/xrpc/_health", timeout=10) as resp:
                assert resp.status == 200
                assert json.loads(resp.read()) == {"version": "bench", "ok": True}
        spread = front.upstreams(requests=4)
    assert spread == {first.removeprefix("http://"): 2, second.removeprefix("http://"): 2}


def test_the_shipped_nginx_site_sends_only_gate_routes_to_the_gate() -> None:
    """The default front of the passthrough benchmark: deploy/nginx/upload-gate.conf as shipped (TLS off),
    with two stand-in upstreams in the gate's and the PDS's places."""
    import urllib.error
    import urllib.request

    from bench import nginx, procs

    if nginx.binary() is None:
        pytest.fail("nginx is not installed (tests/prereqs.sh installs nginx-light)", pytrace=False)
    with procs.upstream() as pds, procs.upstream() as gate, nginx.shipped_site(gate, pds) as front:
        with urllib.request.urlopen(front.url + "/xrpc/_health", timeout=10) as resp:
            assert json.loads(resp.read()) == {"version": "bench", "ok": True}
        for path in ("/xrpc/com.atproto.sync.getBlob?cid=x", "/XRPC/com.atproto.repo.UPLOADBLOB/"):
            with pytest.raises(urllib.error.HTTPError) as answer:  # the stand-in knows neither route
                urllib.request.urlopen(front.url + path, timeout=10)
            answer.value.close()
            assert answer.value.code in (404, 405)
        spread = front.upstreams(requests=3)
    assert spread == {pds.removeprefix("http://"): 1, gate.removeprefix("http://"): 2}


def test_the_relay_floor_answers_as_its_upstream() -> None:
    import urllib.request

    from bench import procs

    with procs.upstream() as up, procs.relay(up) as relay:
        with urllib.request.urlopen(relay.url + "/xrpc/_health", timeout=10) as resp:
            assert resp.status == 200
            assert json.loads(resp.read()) == {"version": "bench", "ok": True}
        with urllib.request.urlopen(relay.url + "/download?mb=1", timeout=10) as resp:
            assert len(resp.read()) == 1_000_000


def _sustained(log_ms: float, hole_ms: list[float], hole_rates: list[float], stored: int = 4000) -> Sustained:
    """Four pairs of 1,000 uploads a block: the log's blocks all at ``log_ms``, the blackhole's each at
    its own latency and rate answered."""

    def block(ms: float) -> list[float]:
        return [ms / 1000 * (1 + i / 1000) for i in range(1000)]

    return Sustained(
        1000,
        1.0,
        {"log": [block(log_ms)] * 4, "blackhole": [block(ms) for ms in hole_ms]},
        {"log": [990.0] * 4, "blackhole": hole_rates},
        answered=4000,
        stored=stored,
    )


def test_the_decision_log_target_is_judged_on_usable_pairs_against_the_runs_own_noise() -> None:
    steady = [1.0, 1.0, 1.0, 1.0]
    assert _sustained(1.05, steady, [990.0] * 4).met() is True
    assert _sustained(1.05, steady, [990.0] * 4, stored=3999).met() is False  # a decision lost
    assert _sustained(1.5, steady, [990.0] * 4).met() is False  # slower, beyond a still machine's noise
    # The baseline spread as far as the log is off: this run cannot tell.
    assert _sustained(1.5, [1.0, 2.0, 1.0, 2.0], [990.0] * 4).met() is None
    # A pair whose baseline block could not keep up (the machine busy elsewhere) is set aside...
    busy = _sustained(1.05, [1.0, 9.0, 1.0, 1.0], [990.0, 500.0, 990.0, 990.0])
    assert busy.usable() == [0, 2, 3] and busy.met() is True
    # ... and with fewer than half the pairs left, nothing is shown.
    assert _sustained(1.05, steady, [500.0, 500.0, 500.0, 990.0]).met() is None
