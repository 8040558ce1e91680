"""``python -m bench --docs``: a run's figures written into the README and docs/performance.md, between
their markers, and nothing else of either file touched."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import docs
from bench.report import Report

REPO = Path(__file__).resolve().parents[2]


def _report() -> Report:
    report = Report(quick=True)
    report.table("Hashing", ["upload", "ms"]).add(upload="12MP JPEG", ms=9.87)
    sizing = report.table(docs.SIZING_TITLE, ["figure", "value", "where it comes from"])
    for fmt, rate in (("JPEG", "81"), ("PNG", "8"), ("WebP", "19"), ("GIF", "11")):
        sizing.add(figure=f"uploads/s per core, 12 MP {fmt}", value=rate, **{"where it comes from": "x"})
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
    assert "| uploads/s per core | 81 | 8 | 19 | 11 |" in readme
    assert "about 1.7 MB per concurrent 12 MP upload" in readme
    assert "| uploads/s per core, 12 MP WebP | 19 | x |" in performance
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
