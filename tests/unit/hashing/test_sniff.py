"""Media types come from the bytes, never from what the client claims."""

from __future__ import annotations

import pytest
from PIL import Image

from gate.hashing.sniff import sniff
from tests.unit.hashing.corpus import encode


def _image(fmt: str) -> bytes:
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    return encode(Image.new("RGB", (16, 16), (200, 30, 30)), fmt)


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    payload = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(payload)).to_bytes(4, "big") + b"ftyp" + payload + b"\x00\x00\x00\x08free"


IMAGES = [
    ("JPEG", "image/jpeg"),
    ("PNG", "image/png"),
    ("GIF", "image/gif"),
    ("WEBP", "image/webp"),
    ("BMP", "image/bmp"),
    ("TIFF", "image/tiff"),
    ("HEIF", "image/heic"),  # pillow-heif writes major brand "heic"
    ("AVIF", "image/avif"),
]


@pytest.mark.parametrize(("fmt", "expected"), IMAGES, ids=[fmt for fmt, _ in IMAGES])
def test_real_images(fmt: str, expected: str) -> None:
    assert sniff(_image(fmt)) == expected


TABLE = [
    (_ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "video/mp4"),
    (_ftyp(b"mp42", b"mp42", b"isom"), "video/mp4"),
    (_ftyp(b"qt  ", b"qt  "), "video/quicktime"),
    (b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat", "video/quicktime"),
    (_ftyp(b"M4A ", b"M4A ", b"mp42"), "audio/mp4"),
    (_ftyp(b"3gp4", b"isom"), "video/3gpp"),
    (_ftyp(b"mif1", b"mif1", b"heic"), "image/heic"),  # iPhone style: heic only as a compatible brand
    (_ftyp(b"mif1", b"mif1", b"miaf"), "image/heif"),
    (_ftyp(b"avif", b"avif", b"mif1", b"miaf"), "image/avif"),
    (_ftyp(b"mif1", b"avif", b"mif1"), "image/avif"),  # AVIF wins over plain HEIF
    (_ftyp(b"avis", b"avis", b"msf1"), "image/avif"),  # animated AVIF
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video/webm"),
    (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", "video/x-matroska"),
    (b"RIFF\x10\x00\x00\x00AVI LIST", "video/x-msvideo"),
    (b"RIFF\x10\x00\x00\x00WAVEfmt ", "audio/wav"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", "application/pdf"),
    (b"PK\x03\x04\x14\x00\x00\x00", "application/zip"),
    (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "application/gzip"),
    (b"ID3\x04\x00\x00\x00\x00\x00\x00", "audio/mpeg"),
    (b"OggS\x00\x02", "application/ogg"),
    (b"\x7fELF\x02\x01\x01", "application/x-elf"),
    (b"", "application/octet-stream"),
    (b"\xff\xd8", "application/octet-stream"),  # too short to be a JPEG
    (b"hello world, this is text", "application/octet-stream"),
    (b'{"$type": "app.bsky.feed.post"}', "application/octet-stream"),
    (b"BM" + b"\x00" * 30, "application/octet-stream"),  # "BM" without a BMP header
    (b"RIFF\x10\x00\x00\x00JUNK", "application/octet-stream"),
    (b"\x00" * 64, "application/octet-stream"),
]


@pytest.mark.parametrize(("body", "expected"), TABLE, ids=[expected for _, expected in TABLE])
def test_magic_bytes_table(body: bytes, expected: str) -> None:
    assert sniff(body) == expected
