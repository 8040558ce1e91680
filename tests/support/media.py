"""Bodies that hide a picture from a gate that reads only what the magic bytes say (issue 12): JPEGs that
sniff as video, animations with the picture in a later frame, and pictures stored turned with an EXIF
orientation that turns them back. Shared by the unit tests and the end-to-end tests."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

# ISO media box types at bytes 4-7 that make a sniffer call the bytes MP4 / QuickTime.
BOXES = (b"ftyp", b"free", b"mdat", b"moov", b"skip", b"wide", b"pnot")

# What a file tagged with each EXIF orientation stores, for the picture to be displayed upright: the
# inverse of the turn viewers apply.
STORED = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}

TEN_MS_FIRST = {"duration": [10, 1000], "loop": 0}  # a clean first frame shown for 10 ms


def polyglot(jpeg: bytes, box: bytes) -> bytes:
    """Issue 12's body: one APP1 segment whose length bytes and first payload bytes put ``box`` at bytes
    4-7, where ISO media keeps its first box type. The segment is exactly as long as its length bytes
    say (they include themselves), so every JPEG decoder skips it."""
    length = int.from_bytes(box[:2], "big")
    payload = (box[2:] + b"isom" + b"\x00\x00\x02\x00" + b"isomiso2mp41").ljust(length - 2, b"\x00")
    return b"\xff\xd8\xff\xe1" + box[:2] + payload + jpeg[2:]


def exif(tag: int) -> bytes:
    data = Image.Exif()
    data[0x0112] = tag
    return data.tobytes()


def oriented(upright: Image.Image, tag: int, fmt: str = "JPEG", **params: Any) -> bytes:
    """``upright`` stored turned so that a viewer applying EXIF orientation ``tag`` shows it upright."""
    return save(upright.transpose(STORED[tag]), fmt, exif=exif(tag), **params)


def save(first: Image.Image, fmt: str, *others: Image.Image, **params: Any) -> bytes:
    """``first`` (and ``others`` as further frames, images or icon sizes) in ``fmt``."""
    buffer = io.BytesIO()
    if others:
        params["append_images"] = list(others)
        if fmt != "ICO":  # an ICO's other sizes are its appended images, without save_all
            params["save_all"] = True
    if fmt == "JPEG" and first.mode not in ("RGB", "L", "CMYK"):
        first = first.convert("RGB")
    first.save(buffer, fmt, **params)
    return buffer.getvalue()
