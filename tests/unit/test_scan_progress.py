"""Scan progress: a bar redrawn in place on a terminal, lines elsewhere (logs, CI), a summary at the end —
rates and an ETA, and never a DID or CID (the output outlives the scan in logs)."""

from __future__ import annotations

import asyncio
import io
import json
import time

from gate.scan.progress import Progress, Tally


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def halfway() -> Tally:
    tally = Tally(repos_total=4, repos_done=1, repos_unchanged=1, blobs_listed=30, blobs_known=5)
    tally.blobs_read, tally.bytes_read = 20, 3 * 1024 * 1024
    tally.started = time.monotonic() - 10  # ten seconds in: 2 blobs/s, half the repos, ETA 10 s
    tally.verdicts.update({"forward": 19, "reject": 1})
    tally.actions.update({"withhold:done": 1})
    tally.problems.update({"corrupt": 2})
    return tally


async def test_a_terminal_gets_a_bar_redrawn_in_place() -> None:
    out = Terminal()
    with Progress(halfway(), out, mode="auto"):
        await asyncio.sleep(0.5)
    drawn = out.getvalue()
    assert drawn.startswith("\r[############............] repos 2/4  blobs 20 read (5 known)  3.0 MB")
    assert "2.0 blobs/s" in drawn and "problems 2" in drawn and "ETA 0:00:1" in drawn
    assert drawn.count("\r") >= 2 and drawn.endswith("\n")  # redrawn, and the line ended on exit
    assert "did:" not in drawn


async def test_elsewhere_a_line_every_interval() -> None:
    out = io.StringIO()  # not a terminal
    with Progress(halfway(), out, mode="auto", interval=0.1):
        await asyncio.sleep(0.55)
    lines = out.getvalue().splitlines()
    assert 3 <= len(lines) <= 6, lines
    assert all(line.startswith("scan: repos 2/4  blobs 20 read (5 known)") for line in lines)
    assert "\r" not in out.getvalue()


def test_the_summary_counts_everything() -> None:
    tally = halfway()
    tally.repos_failed, tally.repos_without_records = 1, 1
    text = tally.summary_text()
    assert "repos: 4 (1 read, 1 unchanged, 1 failed, 1 without records)" in text
    assert "blobs: 30 listed, 20 read (3.0 MB), 5 already recorded" in text
    assert "verdicts: forward 19, reject 1\nactions: withhold:done 1\nproblems: corrupt 2\n" in text
    summary = json.loads(tally.to_json())
    assert summary["repos"] == {"total": 4, "read": 1, "unchanged": 1, "failed": 1, "without_records": 1}
    assert (summary["problems"], summary["blobs_per_second"]) == ({"corrupt": 2}, 2.0)
