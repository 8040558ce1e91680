"""``python -m bench --docs``: a run's figures written into the README and docs/performance.md, between
their markers, and nothing else of either file touched."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import docs, scale
from bench.report import Report

REPO = Path(__file__).resolve().parents[2]


def _report() -> Report:
    report = Report(quick=True)
    report.table("Hashing", ["upload", "ms"]).add(upload="12MP JPEG", ms=9.87)
    sizing = report.table(docs.SIZING_TITLE, ["figure", "value", "where it comes from"])
    for size, rates in (
        ("1024×768 (0.8 MP)", ("160", "40")),
        ("4032×3024 (12.2 MP)", ("81", "8", "19", "11")),
    ):
        for fmt, rate in zip(("JPEG", "PNG", "WebP", "GIF"), rates, strict=False):
            figure = f"uploads/s per core, {size} {fmt}"
            sizing.add(figure=figure, value=rate, **{"where it comes from": "x"})
    sizing.add(figure="memory per concurrent 12 MP upload", value="1.7 MB", **{"where it comes from": "y"})
    return report


def _copy_docs(tmp: Path) -> Path:
    (tmp / "docs").mkdir()
    shutil.copy(REPO / "README.md", tmp / "README.md")
    shutil.copy(REPO / "docs" / "performance.md", tmp / "docs" / "performance.md")
    return tmp


def _outside(text: str, *names: str) -> str:
    for name in names:
        head, rest = text.split(f"<!-- {name}:begin -->", 1)
        text = head + rest.split(f"<!-- {name}:end -->", 1)[1]
    return text


def test_a_run_of_every_section_rewrites_both_blocks_and_nothing_else(tmp_path: Path) -> None:
    repo = _copy_docs(tmp_path)
    before = {p: p.read_text() for p in (repo / "README.md", repo / "docs" / "performance.md")}
    docs.write(_report(), all_sections=True, repo=repo)
    readme, performance = (repo / "README.md").read_text(), (repo / "docs" / "performance.md").read_text()
    # A line per size, a column per format (a size the run has no figure for shows "-").
    assert "| uploads/s per core, per replica | JPEG | PNG | WebP | GIF |" in readme
    assert "| 1024×768 (0.8 MP) | 160 | 40 | - | - |" in readme
    assert "| 4032×3024 (12.2 MP) | 81 | 8 | 19 | 11 |" in readme
    assert "about 1.7 MB per concurrent 12 MP upload" in readme
    assert "| uploads/s per core, 4032×3024 (12.2 MP) WebP | 19 | x |" in performance
    assert "| 12MP JPEG | 9.87 |" in performance  # the run's results replace the old ones
    assert "From `python -m bench --quick` on " in readme
    assert _outside(readme, "sizing") == _outside(before[repo / "README.md"], "sizing")
    assert _outside(performance, "sizing", "bench") == _outside(
        before[repo / "docs" / "performance.md"], "sizing", "bench"
    )
    docs.write(_report(), all_sections=True, repo=repo)  # again: the same files, markers kept
    assert (repo / "README.md").read_text() == readme


def test_a_partial_run_leaves_the_results_block_alone(tmp_path: Path) -> None:
    repo = _copy_docs(tmp_path)
    results = (repo / "docs" / "performance.md").read_text().split("<!-- bench:begin -->")[1]
    docs.write(_report(), all_sections=False, sections=" --only hashing scale", repo=repo)
    performance = (repo / "docs" / "performance.md").read_text()
    assert performance.split("<!-- bench:begin -->")[1] == results
    assert "From `python -m bench --quick --only hashing scale` on " in performance


def test_a_run_without_the_sizing_table_or_a_file_without_markers_is_refused(tmp_path: Path) -> None:
    repo = _copy_docs(tmp_path)
    with pytest.raises(docs.DocsError, match="scale section"):
        docs.write(Report(quick=True), all_sections=False, repo=repo)
    (repo / "README.md").write_text("# no markers\n")
    with pytest.raises(docs.DocsError, match="sizing:begin"):
        docs.write(_report(), all_sections=False, repo=repo)


def test_the_command_refuses_docs_without_the_scale_section() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "hashing", "--docs"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert "--docs needs the scale section" in run.stderr


def test_the_sizing_table_has_a_row_per_size_and_format_the_hashing_section_measured() -> None:
    report = Report(quick=True)
    hashing = report.table(scale.HASHING_TITLE, ["upload", "gate CPU ms"])
    for upload, ms in (("256px JPEG", 0.5), ("1024px JPEG", 8.0), ("12MP JPEG", 18.0), ("12MP WebP", 48.0)):
        hashing.add(upload=upload, **{"gate CPU ms": ms})
    measured = {"gate_cpu_ms": 2.0, "memory_per_upload": 2**20}
    table = scale._sizing(report, measured, scale.Writes({"decisions": 10}, 2), uploads=10, quick=True)
    rates = {r["figure"]: r["value"] for r in table.rows if str(r["figure"]).startswith(docs.PER_CORE)}
    # 1000 / (hashing + gate process) ms; 256 px is not a size the table sizes for.
    assert rates == {
        "uploads/s per core, 1024×768 (0.8 MP) JPEG": "100",
        "uploads/s per core, 4032×3024 (12.2 MP) JPEG": "50",
        "uploads/s per core, 4032×3024 (12.2 MP) WebP": "20",
    }
    assert "| 1024×768 (0.8 MP) | 100 | - |" in docs.readme_sizing(report)
