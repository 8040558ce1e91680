"""``scan --metrics-file``: what node_exporter's textfile collector reads is valid Prometheus text (Debian's
promtool says so), carries the summary's counts, and says whether the scan finished."""

from __future__ import annotations

import asyncio
import subprocess
from functools import partial
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from gate.scan.metrics_file import MetricsFile, scan_metrics, write_metrics
from gate.scan.progress import Tally
from tests.support.prometheus import need


def _samples(path: Path) -> dict[tuple[str, tuple[str, ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.values()))): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }


def _tally() -> Tally:
    tally = Tally(
        repos_total=5, repos_done=3, repos_unchanged=1, repos_failed=1, blobs_read=7, bytes_read=9000
    )
    tally.verdicts.update({"forward": 5, "reject": 2})
    tally.actions.update({"takedown:done": 1, "takedown:capped": 1})
    tally.problems.update({"not_found": 2})
    return tally


def test_the_file_promtool_reads(tmp_path: Path) -> None:
    path = tmp_path / "scan.prom"
    write_metrics(path, _tally(), 1_800_000_000.0, None)
    checked = subprocess.run(
        [need("promtool"), "check", "metrics"], input=path.read_bytes(), capture_output=True
    )
    assert checked.returncode == 0, checked.stderr.decode() + checked.stdout.decode()
    samples = _samples(path)
    assert samples[("upload_gate_scan_repos", ("failed",))] == 1
    assert samples[("upload_gate_scan_repos", ("total",))] == 5
    assert samples[("upload_gate_scan_bytes_read", ())] == 9000
    assert samples[("upload_gate_scan_verdicts", ("reject",))] == 2
    assert samples[("upload_gate_scan_actions", ("capped", "takedown"))] == 1
    assert samples[("upload_gate_scan_problems", ("not_found",))] == 2
    assert samples[("upload_gate_scan_finished_timestamp_seconds", ())] == 0  # still running
    assert [p.name for p in tmp_path.iterdir()] == ["scan.prom"]  # written aside, renamed: nothing left over


def test_written_while_running_and_marked_finished(tmp_path: Path) -> None:
    path = tmp_path / "scan.prom"
    tally = _tally()

    async def scan() -> list[float]:
        seen = []
        async with MetricsFile(path, partial(scan_metrics, tally), 0.05) as metrics:
            seen.append(_samples(path)[("upload_gate_scan_blobs", ("read",))])  # at once
            tally.blobs_read = 8
            await asyncio.sleep(0.3)
            seen.append(_samples(path)[("upload_gate_scan_blobs", ("read",))])  # at an interval
            tally.blobs_read = 9
            metrics.finish()
        return seen

    assert asyncio.run(scan()) == [7, 8]
    final = _samples(path)
    assert final[("upload_gate_scan_blobs", ("read",))] == 9
    assert final[("upload_gate_scan_finished_timestamp_seconds", ())] > 0
