"""``scan retro --metrics-file``: the runs counter goes on from the file an earlier run left (the
counter's only memory between cron runs), a hunt that raised is in the file as failed, and a file that is
not Prometheus text starts the count again. (A done hunt and a stopped HMA pass, through the real
command: tests/integration/scan/test_retro_metrics_file.py.)"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from prometheus_client import write_to_textfile

from gate.scan.metrics_file import MetricsFile
from gate.scan.retro import RetroTally, counted
from gate.scan.retro_metrics_file import RetroMetrics, earlier_runs, this_process_runs


def test_the_runs_go_on_from_the_file_an_earlier_run_left(tmp_path: Path) -> None:
    path = tmp_path / "retro.prom"
    assert earlier_runs(path) == {}  # no file yet: from 0, every kind and outcome listed
    first = RetroMetrics(path)
    assert first.runs() == this_process_runs()
    assert {
        ("bank", "done"),
        ("bank", "failed"),
        ("hma", "done"),
        ("hma", "stopped"),
        ("hma", "failed"),
    } <= set(first.runs())
    path.write_text(
        "# TYPE upload_gate_retro_runs_total counter\n"
        'upload_gate_retro_runs_total{kind="hma",outcome="stopped"} 4\n'
        'upload_gate_retro_runs_total{kind="bank",outcome="done"} 7\n'
        "# TYPE upload_gate_scan_retro_hits gauge\n"
        'upload_gate_scan_retro_hits{kind="hma"} 9\n'
    )
    later = RetroMetrics(path)
    now = this_process_runs()
    assert later.runs()[("hma", "stopped")] == 4 + now[("hma", "stopped")]
    assert later.runs()[("bank", "done")] == 7 + now[("bank", "done")]
    write_to_textfile(str(path), later(1.0, 2.0))  # written as the CLI writes it, and read back
    assert earlier_runs(path) == later.runs()


def test_a_file_that_is_not_prometheus_text_counts_from_zero(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "retro.prom"
    path.write_text("upload_gate_retro_runs_total{kind=\n")
    with caplog.at_level(logging.WARNING, logger="gate.scan"):
        assert earlier_runs(path) == {}
    assert "its retro runs count from 0" in caplog.text


def test_a_hunt_that_raised_is_written_as_failed(tmp_path: Path) -> None:
    path = tmp_path / "retro.prom"
    path.write_text('upload_gate_retro_runs_total{kind="bank",outcome="failed"} 2\n')
    before = this_process_runs()[("bank", "failed")]

    async def broken() -> RetroTally:
        raise RuntimeError("the hunt broke")

    async def run() -> None:
        async with MetricsFile(path, RetroMetrics(path), 60.0):
            assert earlier_runs(path)[("bank", "failed")] == 2 + before  # written at once, before the hunt
            await counted("bank", broken())

    with pytest.raises(RuntimeError, match="the hunt broke"):
        asyncio.run(run())
    assert earlier_runs(path)[("bank", "failed")] == 2 + before + 1
