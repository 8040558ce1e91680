"""Debian's headless Chromium, driven by Playwright (its own browser download is never used)."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """The browser's path, or a loud failure naming the package (never a skip)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("headless Chromium is missing: apt-get install -y chromium (.ci/run does)", pytrace=False)
    return CHROMIUM
