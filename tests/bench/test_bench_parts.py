"""The benchmark's own parts: the corpus comes from the three wheels, and a report is written as
Markdown and JSON. (The whole suite runs in CI as ``make bench-quick``.)"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from bench import corpus
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
