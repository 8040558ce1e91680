"""Each signal type's facts: valid hashes, an upload's values, which sources hold it."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import replace

import pytest

from gate.hashing.digests import digests
from gate.signals import SIGNALS, MatchSource, SignalType, supported_by
from gate.types import Hashes, PdqHash

BODY = b"some upload"
FOUND = digests(BODY)
PDQ_A, PDQ_B = "ab" * 32, "cd" * 32
UPLOAD = Hashes(
    sha256=FOUND.sha256,
    md5=FOUND.md5,
    sha1=FOUND.sha1,
    cid=FOUND.cid,
    size=len(BODY),
    media_type="image/png",
    media_types=("image/png",),
    pdq=(PdqHash(PDQ_A, 90), PdqHash(PDQ_B.upper(), 90, frame=1), PdqHash(PDQ_A, 90, "rotate90")),
    phash="00ff00ff00ff00ff",
)


@pytest.mark.parametrize(
    ("signal", "value", "valid"),
    [
        (SignalType.PDQ, PDQ_A, True),
        (SignalType.PDQ, PDQ_A[:-1], False),
        (SignalType.PDQ, "g" * 64, False),
        (SignalType.MD5, FOUND.md5, True),
        (SignalType.MD5, FOUND.sha1, False),
        (SignalType.SHA1, FOUND.sha1, True),
        (SignalType.SHA256, FOUND.sha256, True),
        (SignalType.SHA256, FOUND.sha256 + "\n", False),
        (SignalType.CID, FOUND.cid, True),
        (SignalType.CID, FOUND.cid[:-1], False),
        (SignalType.CID, "a" + FOUND.cid[1:], False),  # not multibase base32
        (SignalType.CID, "bafyrei" + FOUND.cid[7:], False),  # dag-cbor, not a raw blob
        (SignalType.CID, FOUND.sha256, False),
        (SignalType.PHASH, "0" * 16, True),
        (SignalType.DHASH, "0" * 17, False),
        (SignalType.VIDEO_MD5, FOUND.md5, True),
    ],
)
def test_a_valid_hash_has_its_types_shape(signal: SignalType, value: str, valid: bool) -> None:
    assert (signal.facts.problem(value) is None) is valid


def test_an_uploads_values_lowercase_and_each_once() -> None:
    assert SignalType.PDQ.facts.values(UPLOAD) == (PDQ_A, PDQ_B)
    assert SignalType.SHA256.facts.values(UPLOAD) == (hashlib.sha256(BODY).hexdigest(),)
    assert SignalType.CID.facts.values(UPLOAD) == (FOUND.cid,)
    assert SignalType.PHASH.facts.values(UPLOAD) == ("00ff00ff00ff00ff",)
    assert SignalType.DHASH.facts.values(UPLOAD) == ()  # not computed: no rule asked for it


def test_video_md5_only_for_bytes_that_are_video_too() -> None:
    assert SignalType.VIDEO_MD5.facts.values(UPLOAD) == ()
    polyglot = replace(UPLOAD, media_types=("image/png", "video/mp4"))
    assert SignalType.VIDEO_MD5.facts.values(polyglot) == (FOUND.md5,)
    video = replace(UPLOAD, media_type="video/mp4", media_types=())
    assert SignalType.VIDEO_MD5.facts.values(video) == (FOUND.md5,)


def test_sources_and_kinds() -> None:
    assert supported_by(MatchSource.HMA) == (SignalType.PDQ, SignalType.VIDEO_MD5)
    assert SignalType.VIDEO_MD5 not in supported_by(MatchSource.LOCAL)
    assert supported_by(MatchSource.LOCAL, MatchSource.HMA) == tuple(SignalType)
    assert [s for s in SignalType if not s.exact] == [SignalType.PDQ, SignalType.PHASH, SignalType.DHASH]
    assert all(SIGNALS[s].type is s for s in SignalType)


def test_phash_needs_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SignalType.PDQ.facts.available()
    monkeypatch.setitem(sys.modules, "imagehash", None)  # as if the optional extra were not installed
    assert not SignalType.PHASH.facts.available()
