"""``upload-gate scan retro --metrics-file PATH``: a retro-hunt run by hand or from cron, as a Prometheus
text file for node_exporter's textfile collector (written by ``MetricsFile``, as ``scan``'s: whole, at
the start, every ``INTERVAL`` and at the end).

The runs are ``upload_gate_retro_runs_total{kind, outcome}``, the name and labels the serving gate counts
its own hunts under (``gate.metrics.RETRO_RUNS``, counted in ``gate.scan.retro.counted``: the numbers
here are read from it), so the shipped alert ``UploadGateRetroHuntFailing`` fires on a cron'd hunt that
stopped or failed as on the gate's. That alert takes ``increase()``, and a process from cron counts one
run at most, so the file is the counter's memory: each run adds its counts to those the file it replaces
held. A file that lists a series at 0 before a run raises it is what ``increase()`` can see; a first run
writes every kind and outcome at 0 before it hunts. A file that is not Prometheus text is started again
from 0 (said in the log), which Prometheus reads as a counter reset.

Besides, gauges of this run (``upload_gate_scan_retro_*``, by kind): hits, decisions re-judged, hits
re-judged before, verdicts and actions, from each part's ``RetroTally`` as it ends. Counts only: never a
DID or a CID.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from gate import metrics
from gate.scan.retro import RetroTally

log = logging.getLogger("gate.scan")

INTERVAL = 10.0  # seconds between writes while a hunt runs
RUNS = "upload_gate_retro_runs"  # the family; its samples are ``…_total``
Runs = dict[tuple[str, str], float]  # (kind, outcome) → runs


def earlier_runs(path: Path) -> Runs:
    """The runs the file at ``path`` counts (none when there is no file yet)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        return {
            (s.labels["kind"], s.labels["outcome"]): s.value
            for family in text_string_to_metric_families(text)  # typed or not (a hand-edited file)
            for s in family.samples
            if s.name == RUNS + "_total"
        }
    except (ValueError, KeyError) as exc:
        log.warning("%s is not the Prometheus text this writes (%s): its retro runs count from 0", path, exc)
        return {}


def this_process_runs() -> Runs:
    """``upload_gate_retro_runs_total`` as this process counted it (every kind and outcome, 0 or not)."""
    return {
        (s.labels["kind"], s.labels["outcome"]): s.value
        for family in metrics.RETRO_RUNS.collect()
        for s in family.samples
        if s.name == RUNS + "_total"
    }


class _Runs:
    """The counter as a collector: a family of fixed values, without the ``_created`` series a
    ``Counter`` adds (this process's creation time, not the file's counter's)."""

    def __init__(self, runs: Runs) -> None:
        self.runs = runs

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            RUNS,
            "Retro-hunts run by upload-gate scan retro with this file, by kind (bank, hma) and outcome (done, "
            "stopped: an HMA lookup failed, failed: it raised), counted across runs in this file.",
            labels=("kind", "outcome"),
        )
        for (kind, outcome), n in sorted(self.runs.items()):
            family.add_metric((kind, outcome), n)
        yield family


class RetroMetrics:
    """What ``scan retro --metrics-file`` writes; ``tallies`` gains each part's tally as it ends."""

    def __init__(self, path: Path) -> None:
        self.earlier = earlier_runs(path)
        self.tallies: dict[str, RetroTally] = {}  # kind ("bank", "hma") → its tally

    def runs(self) -> Runs:
        now = this_process_runs()
        return {key: self.earlier.get(key, 0) + now.get(key, 0) for key in {*self.earlier, *now}}

    def __call__(self, started: float, finished: float | None) -> CollectorRegistry:
        registry = CollectorRegistry()
        registry.register(_Runs(self.runs()))

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(f"upload_gate_scan_retro_{name}", doc, labels, registry=registry)

        hits = gauge("hits", "Stored decisions this run's hunt matched, by kind.", ("kind",))
        judged = gauge("judged", "Stored decisions this run re-judged and recorded, by kind.", ("kind",))
        already = gauge(
            "already_rejudged", "Hits of this run re-judged before (a retro decision names them).", ("kind",)
        )
        verdicts = gauge(
            "verdicts", "Decisions this run re-judged, by kind and verdict.", ("kind", "verdict")
        )
        actions = gauge(
            "actions",
            "What [scan] did to this run's hits, by kind, action and result.",
            ("kind", "action", "result"),
        )
        for kind, tally in self.tallies.items():
            hits.labels(kind).set(tally.hits)
            judged.labels(kind).set(tally.judged)
            already.labels(kind).set(tally.already)
            for verdict, n in tally.verdicts.items():
                verdicts.labels(kind, verdict).set(n)
            for action, result, n in _actions(tally):
                actions.labels(kind, action, result).set(n)
        gauge("started_timestamp_seconds", "When this retro-hunt started (Unix time).").set(started)
        gauge(
            "finished_timestamp_seconds",
            "When this retro-hunt ended with every part done (Unix time); 0 while it runs, or when it "
            "stopped or failed.",
        ).set(finished or 0)
        return registry


def _actions(tally: RetroTally) -> Iterator[tuple[str, str, int]]:
    for key, n in tally.actions.items():
        action, _, result = key.partition(":")
        yield action, result, n
