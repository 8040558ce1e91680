"""``make test`` on a machine that lacks what the tests need: it names each missing piece and how to get
it, and stops before running anything (tests/prereqs.sh, make test's first step).

The machine here has everything, so the tests hide some of it: PATH is a directory of links to every
program in /usr/bin except the ones taken away — apt-get among them, so nothing is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def bin_without(tmp_path: Path, *hidden: str) -> Path:
    farm = tmp_path / "bin"
    farm.mkdir()
    for program in Path("/usr/bin").iterdir():
        if program.name not in hidden:
            (farm / program.name).symlink_to(program)
    return farm


def make_test(tmp_path: Path, path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``make test`` in a copy of the Makefile and the check (never this checkout: if the check let it
    through, nothing else is there to run)."""
    work = tmp_path / "checkout"
    (work / "tests").mkdir(parents=True)
    shutil.copy(REPO / "Makefile", work / "Makefile")
    shutil.copy(REPO / "tests" / "prereqs.sh", work / "tests" / "prereqs.sh")
    make = shutil.which("make")
    assert make is not None
    return subprocess.run(
        [make, "--no-print-directory", "-C", str(work), "test"],
        env={"PATH": str(path), "HOME": os.environ.get("HOME", "/"), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_missing_programs_are_named_with_their_packages_and_nothing_runs(tmp_path: Path) -> None:
    farm = bin_without(tmp_path, "caddy", "chromium", "promtool", "node", "npm", "apt-get")
    result = make_test(tmp_path, farm)
    assert result.returncode != 0
    err = result.stderr
    assert "make test needs what this machine lacks:" in err
    assert "  - caddy: the end-to-end tests run the shipped Caddyfiles (Debian: caddy)" in err
    assert "  - chromium: the browser tests (review page, cross-origin uploads) (Debian: chromium)" in err
    assert (
        "  - prometheus and promtool: the alert rules' and the dashboard's tests (Debian: prometheus)" in err
    )
    assert "  - Node.js 20 or newer with npm" in err
    assert "Install the Debian packages with: apt-get install" in err
    assert " caddy chromium prometheus" in err.split("apt-get install", 1)[1].splitlines()[0]
    # It stopped there: no virtualenv, no lint, no test.
    assert not (tmp_path / "checkout" / ".venv").exists()
    assert "ruff check" not in result.stdout + err and ".venv/bin/pytest" not in result.stdout + err


def test_a_python_too_old_is_named(tmp_path: Path) -> None:
    old = tmp_path / "python3.9"
    old.write_text(
        '#!/bin/sh\ncase "$2" in *version.split*) echo 3.9.2; exit 0;; esac\nexit 1\n'
    )  # answers like a Python 3.9: not >= 3.11
    old.chmod(0o755)
    result = make_test(tmp_path, bin_without(tmp_path, "apt-get"), PY=str(old))
    assert result.returncode != 0
    assert f"  - Python 3.11 or newer: {old} is 3.9.2 (run make test PY=/path/to/python3.11)" in result.stderr
