"""``FileWatch`` notices what editors, ConfigMaps and copies do to a file; ``every`` outlives a failing step."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from gate.watch import FileWatch, every


def test_a_file_rewritten_renamed_over_or_removed(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("a")
    watch = FileWatch(path)
    watch.seen(watch.look())
    assert watch.changed() is None
    path.write_text("ab")  # edited in place: the size (and mtime) change
    assert watch.changed() is not None
    watch.seen(watch.look())
    (tmp_path / "new").write_text("ab")
    os.replace(tmp_path / "new", path)  # saved by rename, same size: a new inode
    assert watch.changed() is not None
    watch.seen(watch.look())
    path.unlink()
    assert watch.look() is None and watch.changed() is None  # missing is not a change to act on


def test_a_directory_of_files(tmp_path: Path) -> None:
    watch = FileWatch(tmp_path, "*.csv")
    assert watch.look() == ()
    (tmp_path / "a.csv").write_text("x")
    (tmp_path / ".a.csv.swp").write_text("x")  # an editor's file is nobody's bank
    (tmp_path / "notes.txt").write_text("x")
    stamp = watch.look()
    assert stamp is not None and [name for name, *_ in stamp] == ["a.csv"]
    watch.seen(stamp)
    (tmp_path / "b.csv").write_text("x")
    assert watch.changed() is not None
    assert FileWatch(tmp_path / "gone", "*.csv").look() is None


async def test_every_outlives_a_failing_step(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("surprise")

    task = asyncio.create_task(every(0.01, step, what="test step", now=True))
    while calls < 3:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "test step failed" in caplog.text
