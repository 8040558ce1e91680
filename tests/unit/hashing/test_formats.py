"""Bytes are judged as every image format a decoder reads them as, not as the first magic number found."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from gate.hashing import formats
from gate.hashing.hasher import hash_bytes
from gate.hashing.options import HashOptions
from gate.hashing.sniff import sniff
from gate.types import Unhashable, Variant
from tests.support.media import BOXES, polyglot
from tests.unit.hashing.corpus import bits, encode, gif, resized

OPTIONS = HashOptions()


def test_every_pillow_format_is_either_tried_or_refused_with_a_reason() -> None:
    Image.init()
    registered = set(Image.OPEN)
    assert registered <= formats.DECODERS | set(formats.REFUSED), "a new Pillow format: decide about it"
    assert not formats.DECODERS & set(formats.REFUSED)
    assert set(formats.tried()) == registered & formats.DECODERS
    assert {"EPS", "IPTC"} <= set(formats.REFUSED)


def test_eps_never_reaches_ghostscript() -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n"
    hashes = hash_bytes(eps, OPTIONS)
    assert hashes.media_types == ("application/postscript",)
    assert (hashes.pdq, hashes.unhashable) == ((), None)  # unscannable: the policy decides


@pytest.mark.parametrize("box", BOXES, ids=[b.decode() for b in BOXES])
def test_a_jpeg_that_sniffs_as_video_is_hashed_as_the_jpeg(box: bytes) -> None:
    jpeg = encode(resized("astronaut.png", 512), "JPEG")
    body = polyglot(jpeg, box)
    assert sniff(body).startswith("video/")  # what the old gate judged it as
    with Image.open(io.BytesIO(body)) as im:  # what every viewer sees
        assert im.format == "JPEG"
    hashes = hash_bytes(body, OPTIONS)
    assert hashes.media_type == "image/jpeg"
    assert hashes.media_types == ("image/jpeg", sniff(body))
    assert hashes.unhashable is None
    assert [p.hex for p in hashes.pdq] == [p.hex for p in hash_bytes(jpeg, OPTIONS).pdq]


VIEWER_IMAGES = [
    ("JPEG", "image/jpeg"),
    ("PNG", "image/png"),
    ("GIF", "image/gif"),
    ("WEBP", "image/webp"),
    ("BMP", "image/bmp"),
    ("TIFF", "image/tiff"),
    ("HEIF", "image/heic"),
    ("AVIF", "image/avif"),
]


@pytest.mark.parametrize(("fmt", "media_type"), VIEWER_IMAGES, ids=[f for f, _ in VIEWER_IMAGES])
def test_ordinary_images_are_read_by_exactly_their_own_decoder(fmt: str, media_type: str) -> None:
    im = resized("coffee.png", 400)
    body = gif(im) if fmt == "GIF" else encode(im, fmt)
    hashes = hash_bytes(body, OPTIONS)
    assert hashes.media_types == (media_type,)
    assert hashes.frames == 1
    # One reading; a GIF is a palette image, which HMA hashes by its indices: that hash is looked up too.
    extra = [Variant.AS_HMA] if fmt == "GIF" else []
    assert [p.variant for p in hashes.pdq] == [Variant.STORED, *extra]


# Formats no browser shows but Pillow reads: "the gate cannot read it" must not be a way around it.
OTHER_IMAGES = [
    ("JPEG2000", "RGB", "image/jp2", 0),
    ("PCX", "RGB", "image/x-pcx", 0),
    ("PPM", "RGB", "image/x-portable-anymap", 0),
    ("SGI", "RGB", "image/sgi", 0),
    ("TGA", "RGB", "image/x-tga", 0),
    ("IM", "RGB", "image/x-im", 0),
    ("QOI", "RGB", "image/x-qoi", 0),
    ("DDS", "RGB", "image/x-dds", 0),
    ("SPIDER", "F", "image/x-spider", 4),
    ("ICNS", "RGB", "image/icns", 16),  # resized to a square icon size
    ("MSP", "1", "image/x-msp", 16),  # 1-bit
    ("XBM", "1", "image/xbm", 16),
]


@pytest.mark.filterwarnings("ignore:IM image format is deprecated:DeprecationWarning")  # writing one
@pytest.mark.parametrize(
    ("fmt", "mode", "media_type", "max_bits"), OTHER_IMAGES, ids=[row[0] for row in OTHER_IMAGES]
)
def test_every_format_pillow_reads_is_hashed(fmt: str, mode: str, media_type: str, max_bits: int) -> None:
    im = resized("coffee.png", 256)
    hashes = hash_bytes(encode(im.convert(mode), fmt), OPTIONS)
    assert hashes.media_types == (media_type,)
    assert hashes.unhashable is None
    reference = hash_bytes(encode(im.convert(mode).convert("RGB"), "PNG"), OPTIONS).pdq[0].hex
    assert bits(hashes.pdq[0].hex, reference) <= max_bits


def test_a_format_without_magic_that_opens_but_cannot_decode_is_unhashable() -> None:
    # A TGA header (no magic number: TGA is tried on every body) promising pixels that are not there.
    tga = encode(resized("coffee.png", 256), "TGA")
    hashes = hash_bytes(tga[: len(tga) // 2], OPTIONS)
    assert hashes.media_types == ("image/x-tga",)
    assert hashes.unhashable in (Unhashable.TRUNCATED, Unhashable.CORRUPT)


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 40,
        b'{"$type": "app.bsky.feed.post", "text": "hello"}' * 50,
        b"%PDF-1.7\n" + b"x" * 4000,
        b"PK\x03\x04" + b"\x00" * 4000,
        b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + b"\x01" * 4000,
        b"",
    ],
    ids=["mp4", "json", "pdf", "zip", "webm", "empty"],
)
def test_common_non_images_open_in_no_decoder(body: bytes) -> None:
    hashes = hash_bytes(body, OPTIONS)
    assert hashes.media_types == (sniff(body),)
    assert (hashes.pdq, hashes.unhashable, hashes.frames) == ((), None, None)
