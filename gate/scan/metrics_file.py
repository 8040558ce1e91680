"""``upload-gate scan --metrics-file PATH``: a scan's counts as a Prometheus text file (and
``MetricsFile``, which ``scan retro --metrics-file`` writes its own with: gate.scan.retro_metrics_file).

Why a file: a scan is a batch job with no listener to scrape; node_exporter's textfile collector (its
``--collector.textfile.directory``) is the usual way such a job reaches Prometheus. The file is written at
every progress interval and once at the end, each time whole (``prometheus_client`` writes a temporary
file beside it and renames it, so the collector never reads half a file). Counts only: never a DID or a
CID (the labels are the bounded verdicts, actions and problem kinds of the summary).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from gate.scan.progress import Tally

# What a file holds, from the job's start and finish (Unix times; finish None while it runs).
Content = Callable[[float, float | None], CollectorRegistry]


def write_metrics(path: Path, tally: Tally, started: float, finished: float | None) -> None:
    """``started``/``finished``: Unix times; ``finished`` None while the scan runs."""
    write_to_textfile(str(path), scan_metrics(tally, started, finished))


def scan_metrics(tally: Tally, started: float, finished: float | None) -> CollectorRegistry:
    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(f"upload_gate_scan_{name}", doc, labels, registry=registry)

    repos = gauge("repos", "Repos of this scan by state (total = listed by the PDS).", ("state",))
    for state, n in (
        ("total", tally.repos_total),
        ("read", tally.repos_done),
        ("unchanged", tally.repos_unchanged),
        ("failed", tally.repos_failed),
    ):
        repos.labels(state).set(n)
    blobs = gauge(
        "blobs", "Blobs of this scan: listed, read and judged, known from an earlier scan.", ("state",)
    )
    for state, n in (
        ("listed", tally.blobs_listed),
        ("read", tally.blobs_read),
        ("known", tally.blobs_known),
    ):
        blobs.labels(state).set(n)
    gauge("bytes_read", "Bytes read by this scan.").set(tally.bytes_read)
    verdicts = gauge("verdicts", "Blobs judged by this scan, by verdict.", ("verdict",))
    for verdict, n in tally.verdicts.items():
        verdicts.labels(verdict).set(n)
    actions = gauge("actions", "What [scan] did, by action and result.", ("action", "result"))
    for key, n in tally.actions.items():
        action, _, result = key.partition(":")
        actions.labels(action, result).set(n)
    problems = gauge("problems", "Blobs and repos this scan could not read or judge, by kind.", ("kind",))
    for kind, n in tally.problems.items():
        problems.labels(kind).set(n)
    gauge("started_timestamp_seconds", "When this scan started (Unix time).").set(started)
    gauge(
        "finished_timestamp_seconds", "When this scan finished to the end (Unix time); 0 while it runs."
    ).set(finished or 0)
    return registry


class MetricsFile:
    """Writes ``content`` to ``path`` every ``interval`` seconds while entered and once when left;
    ``finish()`` marks the job complete."""

    def __init__(self, path: Path, content: Content, interval: float) -> None:
        self.path = path
        self.content = content
        self.interval = interval
        self.started = time.time()
        self._finished: float | None = None
        self._task: asyncio.Task[None] | None = None

    def finish(self) -> None:
        self._finished = time.time()

    async def __aenter__(self) -> MetricsFile:
        self._write()  # at once: a scan that cannot write its file says so before it reads anything
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._write()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._write()

    def _write(self) -> None:
        write_to_textfile(str(self.path), self.content(self.started, self._finished))
