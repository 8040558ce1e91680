"""``python -m bench --docs``: the run's figures written into the documentation, so that what the README and
docs/performance.md say is the output of one run, not figures copied by hand from several.

Two generated blocks, each between HTML-comment markers that Markdown does not show:
- docs/performance.md, ``bench:begin`` … ``bench:end``: the whole results.md of the run (only a run of
  every section writes it, so that no section's tables are lost to a partial run);
- the README and docs/performance.md, ``sizing:begin`` … ``sizing:end``: the sizing table of the
  ``scale`` section (the README's as uploads/s per core by format and memory per concurrent upload,
  docs/performance.md's with where each figure comes from).
Everything outside the markers is left as it is.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from bench.report import Report, Table

REPO = Path(__file__).resolve().parents[1]
SIZING_TITLE = "Sizing (per replica, from this run)"
PER_CORE = "uploads/s per core, "  # then the size and the format: "1024×768 (0.8 MP) JPEG"
MEMORY = "memory per concurrent 12 MP upload"


class DocsError(Exception):
    """The run cannot be written into the documentation (a section missing, a marker missing)."""


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with what lies between ``<!-- name:begin -->`` and ``<!-- name:end -->`` replaced by ``body``."""
    pattern = re.compile(rf"(<!-- {name}:begin -->\n).*?(<!-- {name}:end -->)", re.DOTALL)
    if len(pattern.findall(text)) != 1:
        raise DocsError(f"expected one <!-- {name}:begin --> … <!-- {name}:end --> block")
    return pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text)


def _sizing(report: Report) -> Table:
    for table in report.tables:
        if table.title == SIZING_TITLE:
            return table
    raise DocsError("the run has no sizing table: --docs needs the scale section")


def _provenance(report: Report, sections: str) -> str:
    mode = " --quick" if report.quick else ""
    return f"From `python -m bench{mode}{sections}` on {time.strftime('%Y-%m-%d', time.gmtime())}."


def readme_sizing(report: Report, sections: str = "") -> str:
    rows = {str(r["figure"]): str(r["value"]) for r in _sizing(report).rows}
    # "uploads/s per core, <size> <format>": a line per size, a column per format, in the run's order.
    rates = {
        tuple(f.removeprefix(PER_CORE).rsplit(" ", 1)): v for f, v in rows.items() if f.startswith(PER_CORE)
    }
    sizes = list(dict.fromkeys(size for size, _ in rates))
    formats = list(dict.fromkeys(fmt for _, fmt in rates))
    lines = [
        _provenance(report, sections) + " See [performance](docs/performance.md#sizing) for how each "
        "figure is reached.",
        "",
        "| uploads/s per core, per replica | " + " | ".join(formats) + " |",
        "|---|" + "---|" * len(formats),
    ]
    lines += [
        f"| {size} | " + " | ".join(rates.get((size, f), "-") for f in formats) + " |" for size in sizes
    ]
    lines += ["", f"Memory: about {rows[MEMORY]} per concurrent 12 MP upload above the idle process."]
    return "\n".join(lines)


def performance_sizing(report: Report, sections: str = "") -> str:
    table = _sizing(report)
    lines = [_provenance(report, sections), "", "| figure | value | where it comes from |", "|---|---|---|"]
    lines += [f"| {r['figure']} | {r['value']} | {r['where it comes from']} |" for r in table.rows]
    return "\n".join(lines)


def write(report: Report, all_sections: bool, sections: str = "", repo: Path = REPO) -> list[Path]:
    """Rewrite the generated blocks from ``report``; the files changed. ``all_sections``: every section
    ran, so the whole results block may be replaced; ``sections``: the ``--only`` part of the command
    line, for the provenance line."""
    readme, performance = repo / "README.md", repo / "docs" / "performance.md"
    texts = {readme: readme.read_text(), performance: performance.read_text()}
    texts[readme] = replace_block(texts[readme], "sizing", readme_sizing(report, sections))
    texts[performance] = replace_block(texts[performance], "sizing", performance_sizing(report, sections))
    if all_sections:
        texts[performance] = replace_block(texts[performance], "bench", report.markdown())
    for path, text in texts.items():
        path.write_text(text)
    return list(texts)
