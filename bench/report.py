"""Results of one benchmark run: tables of rows, rendered as Markdown and written as JSON."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Row = dict[str, Any]


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[Row] = field(default_factory=list)
    note: str = ""

    def add(self, **values: Any) -> None:
        self.rows.append(values)


@dataclass
class Report:
    quick: bool
    tables: list[Table] = field(default_factory=list)
    targets: list[Row] = field(default_factory=list)

    def table(self, title: str, columns: list[str], note: str = "") -> Table:
        table = Table(title, columns, note=note)
        self.tables.append(table)
        return table

    def target(self, name: str, goal: str, measured: str, met: bool | None, *, issue: int = 6) -> None:
        self.targets.append({"issue": issue, "target": name, "goal": goal, "measured": measured, "met": met})

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": machine(),
            "quick": self.quick,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "targets": self.targets,
            "tables": [
                {"title": t.title, "note": t.note, "columns": t.columns, "rows": t.rows} for t in self.tables
            ],
        }

    def markdown(self) -> str:
        m = machine()
        lines = [
            f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, {m['system']}, "
            f"Python {m['python']}{' (quick mode)' if self.quick else ''}.",
            "",
        ]
        if self.targets:
            head = ["**Targets**", "", "| issue | target | goal | measured | met |", "|---|---|---|---|---|"]
            lines += head
            for t in sorted(self.targets, key=lambda t: -int(t["issue"])):  # the newest issue first
                met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
                lines.append(f"| {t['issue']} | {t['target']} | {t['goal']} | {t['measured']} | {met} |")
            lines.append("")
        for table in self.tables:
            lines += [f"**{table.title}**", ""]
            if table.note:
                lines += [table.note, ""]
            lines.append("| " + " | ".join(table.columns) + " |")
            lines.append("|" + "---|" * len(table.columns))
            for row in table.rows:
                lines.append("| " + " | ".join(_cell(row.get(c, "")) for c in table.columns) + " |")
            lines.append("")
        return "\n".join(lines)

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        md, js = out_dir / "results.md", out_dir / "results.json"
        md.write_text(self.markdown())
        js.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")
        return md, js


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb: float | str = "?"
    with contextlib.suppress(ValueError, OSError):
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


def percentile_ms(seconds: list[float], p: float) -> float:
    ordered = sorted(seconds)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k] * 1000


def steady_rate(blocks: list[list[float]]) -> float:
    """Completions per second while the load was steady: within each block, between its 10th and its
    90th percentile completion, over the blocks together.

    A block of N uploads at concurrency C starts with every connection opening at once and ends
    draining with fewer uploads in flight than there are cores. Counted whole (N / wall time), those
    edges weigh on a short block and on the slower side the most: at concurrency 64 with 48 uploads a
    block, the gate's hash workers idled through the last ~10 % of it. Every throughput the benchmark
    compares (direct, through the gate, pure hashing) is measured this way.
    """
    count, span = 0, 0.0
    for done in blocks:
        ordered = sorted(done)
        trim = len(ordered) // 10
        first, last = trim, len(ordered) - 1 - trim
        if last - first >= 2:
            count += last - first
            span += ordered[last] - ordered[first]
    return count / span if span > 0 else float("nan")
