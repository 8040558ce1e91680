"""``upload-gate hash FILE…`` run as a real subprocess on files written here."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_bytes

from gate.hashing.digests import digests
from gate.hashing.pdq import TRANSFORMS
from tests.support.hma_files import KINDS, hma_hash
from tests.support.media import exif, save
from tests.unit.hashing.corpus import encode, resized

ROOT = Path(__file__).resolve().parents[3]

COMMAND = [sys.executable, "-m", "gate", "hash"]
CMYK = next(k for k in KINDS if k.name == "cmyk_jpeg")


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hash-command")
    written = {
        "photo.png": encode(resized("coffee.png", 600), "PNG"),
        "photo.jpg": encode(resized("astronaut.png", 1500), "JPEG"),
        "flat.png": encode(Image.new("RGB", (300, 300), "white"), "PNG"),
        "notes.txt": b"hello",
        # Two frames, the second stored turned with Orientation = 6: the picture as displayed too.
        "moving.webp": save(
            resized("coffee.png", 300),
            "WEBP",
            resized("astronaut.png", 300).resize((300, 200)),
            lossless=True,
            exif=exif(6),
        ),
        "cmyk.jpg": CMYK.make(resized("chelsea.png", 500)),
    }
    for name, body in written.items():
        (folder / name).write_bytes(body)
    return {name: folder / name for name in written}


def test_text_output_shows_every_hash(files: dict[str, Path]) -> None:
    result = _run(files["photo.png"], files["notes.txt"])
    assert result.returncode == 0, result.stderr
    body = files["photo.png"].read_bytes()
    expected = digests(body)
    pdq_hex, quality = pdq_from_bytes(body)  # short side 400 px: the fast path is HMA's hash exactly
    out = result.stdout
    for value in (expected.sha256, expected.md5, expected.sha1, expected.cid, "image/png", "600x400"):
        assert value in out
    assert f"{pdq_hex}  quality {quality}" in out
    assert digests(b"hello").cid in out
    assert "application/octet-stream" in out


def test_json_output_with_dihedral(files: dict[str, Path]) -> None:
    result = _run("--json", "--dihedral", files["photo.jpg"], files["flat.png"])
    assert result.returncode == 0, result.stderr
    photo, flat = json.loads(result.stdout)
    assert photo["sha256"] == hashlib.sha256(files["photo.jpg"].read_bytes()).hexdigest()
    assert photo["media_type"] == "image/jpeg"
    assert [p["transform"] for p in photo["pdq"]] == list(TRANSFORMS)
    assert all(len(p["hash"]) == 64 and p["quality"] >= 50 for p in photo["pdq"])
    assert flat["pdq"] == []
    assert flat["unhashable"] == "low_quality"


def test_full_resolution_flag_gives_hmas_hash(files: dict[str, Path]) -> None:
    result = _run("--json", "--full-resolution", files["photo.jpg"])
    assert result.returncode == 0, result.stderr
    (photo,) = json.loads(result.stdout)
    assert photo["pdq"][0]["hash"] == pdq_from_bytes(files["photo.jpg"].read_bytes())[0]


def test_phash_and_dhash_on_request(files: dict[str, Path]) -> None:
    result = _run("--json", "--phash", "--dhash", files["photo.png"])
    (photo,) = json.loads(result.stdout)
    assert len(photo["phash"]) == 16
    assert len(photo["dhash"]) == 16


def test_unreadable_files_fail_clearly_and_the_rest_are_hashed(
    files: dict[str, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.jpg"
    result = _run(missing, files["photo.png"], tmp_path)
    assert result.returncode == 1
    assert f"{missing}: No such file or directory" in result.stderr
    assert f"{tmp_path}: Is a directory" in result.stderr
    assert digests(files["photo.png"].read_bytes()).sha256 in result.stdout


def test_every_frame_and_orientation_is_printed_and_listed(files: dict[str, Path]) -> None:
    text = _run(files["moving.webp"])
    assert text.returncode == 0, text.stderr
    rows = [line.split() for line in text.stdout.splitlines() if line.strip().startswith("pdq")]
    labels = [" ".join(words[: next(i for i, w in enumerate(words) if len(w) == 64)]) for words in rows]
    assert labels == ["pdq", "pdq displayed rotate270", "pdq frame 1", "pdq frame 1 displayed rotate270"]
    assert "frames" in text.stdout
    (doc,) = json.loads(_run("--json", files["moving.webp"]).stdout)
    assert (doc["media_types"], doc["frames"]) == (["image/webp"], 2)
    assert [(p["frame"], p["variant"]) for p in doc["pdq"]] == [
        (0, "stored"),
        (0, "displayed"),
        (1, "stored"),
        (1, "displayed"),
    ]


def test_hmas_own_hash_of_a_cmyk_picture_is_printed_beside_the_pictures(files: dict[str, Path]) -> None:
    text = _run(files["cmyk.jpg"])
    assert text.returncode == 0, text.stderr
    (row,) = [line.split() for line in text.stdout.splitlines() if line.strip().startswith("pdq as_hma")]
    assert row[2] == hma_hash(files["cmyk.jpg"].read_bytes())
    (doc,) = json.loads(_run("--json", files["cmyk.jpg"]).stdout)
    assert [p["variant"] for p in doc["pdq"]] == ["stored", "as_hma"]
    assert doc["pdq"][1]["hash"] == hma_hash(files["cmyk.jpg"].read_bytes())
