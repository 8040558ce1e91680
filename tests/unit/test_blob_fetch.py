"""The PDS's disk blob store as the scan reads it: the file's size is given to ``admit`` (where a scan
waits for room in its memory budget) before a byte is read; a missing, oversized or changed file is a
BlobUnavailable of its kind, admitted or not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gate.blob_fetch import BlobUnavailable, DiskBlobs
from tests.support.cids import cid_of

DID = "did:plc:abcdefghijklmnopqrstuvwx"


def store(tmp_path: Path, *bodies: bytes) -> DiskBlobs:
    (tmp_path / DID).mkdir()
    for body in bodies:
        (tmp_path / DID / cid_of(body)).write_bytes(body)
    return DiskBlobs(tmp_path, max_bytes=100)


async def test_the_size_is_admitted_before_the_bytes_are_read(tmp_path: Path) -> None:
    body = b"x" * 60
    blobs = store(tmp_path, body)
    admitted: list[int] = []

    async def admit(size: int) -> None:
        admitted.append(size)

    assert await blobs.get_blob(DID, cid_of(body), admit) == body
    assert admitted == [60]


async def test_a_refused_admission_reads_nothing(tmp_path: Path) -> None:
    body = b"y" * 60
    blobs = store(tmp_path, body)

    async def refuse(size: int) -> None:
        raise BlobUnavailable("too_large", f"{size} bytes do not fit")

    with pytest.raises(BlobUnavailable, match="60 bytes do not fit"):
        await blobs.get_blob(DID, cid_of(body), refuse)


@pytest.mark.parametrize(
    ("kind", "prepare"),
    [
        ("missing", lambda d: None),
        ("too_large", lambda d: (d / cid_of(b"z")).write_bytes(b"z" * 101)),
        ("corrupt", lambda d: (d / cid_of(b"z")).write_bytes(b"not z")),
    ],
)
async def test_bad_files_are_unavailable_by_kind(
    tmp_path: Path, kind: str, prepare: Callable[[Path], object]
) -> None:
    blobs = store(tmp_path)
    prepare(tmp_path / DID)
    with pytest.raises(BlobUnavailable) as info:
        await blobs.get_blob(DID, cid_of(b"z"))
    assert info.value.kind == kind
