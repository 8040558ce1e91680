"""The reviewer's blurred preview finds the picture a viewer sees, whatever the bytes sniff as."""

from __future__ import annotations

import io

from PIL import Image

from gate.admin.preview import PREVIEW_SIDE, blurred_preview
from tests.support.media import polyglot
from tests.unit.hashing.corpus import encode, resized


def test_a_jpeg_that_sniffs_as_video_gets_its_preview() -> None:
    body = polyglot(encode(resized("astronaut.png", 512), "JPEG"), b"ftyp")
    preview = blurred_preview(body, max_pixels=89_478_485)
    assert preview is not None
    with Image.open(io.BytesIO(preview)) as im:
        assert im.format == "JPEG" and im.mode == "L" and max(im.size) <= PREVIEW_SIDE


def test_bytes_no_viewer_shows_get_none() -> None:
    assert blurred_preview(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200, max_pixels=89_478_485) is None
