"""The media type of a body, from its magic bytes.

Trust boundary: the client's ``Content-Type`` is a claim and is never consulted. Whatever the bytes
say decides whether the gate runs an image decoder on them, so the table below only names an image
type when a decoder the gate ships can open it.
"""

from __future__ import annotations

OCTET_STREAM = "application/octet-stream"

# ISO base media file format (``ftyp`` box) brands. Image brands are looked for among the major AND
# compatible brands, AVIF first: an AVIF file also lists ``mif1`` (plain HEIF).
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_HEIF_BRANDS = frozenset({b"mif1", b"msf1", b"mif2"})
_QUICKTIME_BRANDS = frozenset({b"qt  "})
_AUDIO_MP4_BRANDS = frozenset({b"M4A ", b"M4B ", b"M4P "})
# QuickTime files may start with a box other than ftyp.
_QUICKTIME_FIRST_BOXES = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})

# Simple prefixes, checked in order.
_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"II+\x00", "image/tiff"),  # BigTIFF
    (b"MM\x00+", "image/tiff"),
    (b"%PDF-", "application/pdf"),
    (b"%!PS", "application/postscript"),  # never decoded: Pillow's EPS reader runs Ghostscript
    (b"\xc5\xd0\xd3\xc6", "application/postscript"),  # DOS EPS binary header
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),  # empty archive
    (b"\x1f\x8b", "application/gzip"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"OggS", "application/ogg"),
    (b"fLaC", "audio/flac"),
    (b"ID3", "audio/mpeg"),
    (b"\x7fELF", "application/x-elf"),
    (b"MZ", "application/x-msdownload"),
)

_BMP_DIB_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})


def sniff(body: bytes | memoryview) -> str:
    """The media type of ``body``; ``application/octet-stream`` when the bytes are not recognised."""
    head = bytes(body[:64])
    if head[4:8] == b"ftyp":
        return _sniff_ftyp(bytes(body[: min(len(body), 4096)]))
    if head[4:8] in _QUICKTIME_FIRST_BOXES:
        return "video/quicktime"
    if head.startswith(b"RIFF") and len(head) >= 12:
        return {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}.get(
            head[8:12], OCTET_STREAM
        )
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska family, DocType names the flavour
        return "video/webm" if b"webm" in head else "video/x-matroska"
    if head.startswith(b"BM") and len(head) >= 18:
        # "BM" alone is too weak a signal; the DIB header size must be one of the known ones.
        if int.from_bytes(head[14:18], "little") in _BMP_DIB_HEADER_SIZES:
            return "image/bmp"
        return OCTET_STREAM
    for prefix, media_type in _PREFIXES:
        if head.startswith(prefix):
            return media_type
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "audio/mpeg"  # MPEG audio frame sync without an ID3 tag
    return OCTET_STREAM


def _sniff_ftyp(head: bytes) -> str:
    size = int.from_bytes(head[0:4], "big")
    size = max(size, 16)
    box = head[8 : min(size, len(head))]
    major = box[0:4]
    # box[4:8] is the minor version; compatible brands follow, four bytes each.
    brands = {major} | {box[i : i + 4] for i in range(8, len(box) - 3, 4)}
    if brands & _AVIF_BRANDS:
        return "image/avif"
    if brands & _HEIC_BRANDS:
        return "image/heic"
    if major in _HEIF_BRANDS:
        return "image/heif"
    if major in _QUICKTIME_BRANDS:
        return "video/quicktime"
    if major in _AUDIO_MP4_BRANDS:
        return "audio/mp4"
    if major.startswith(b"3g2"):
        return "video/3gpp2"
    if major.startswith(b"3gp"):
        return "video/3gpp"
    return "video/mp4"
