"""Debian's ``prometheus`` package (the server and promtool), as the tests of deploy/prometheus and
deploy/grafana use it."""

from __future__ import annotations

import shutil

import pytest


def need(binary: str) -> str:
    """The path of ``prometheus`` or ``promtool``; a missing one fails the test with how to install it."""
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is not installed (apt-get install prometheus; make test does)", pytrace=False)
    return path
