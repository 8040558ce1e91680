"""Every picture inside one opened image: animation frames, pages, icon sizes, stereo pairs.

A viewer plays every frame of a GIF, APNG or animated WebP; a banned picture shown for 10 ms after a
clean first frame is still shown (issue 12). What counts as a frame, by format (Pillow's own model):
- GIF, APNG, animated WebP / AVIF, FLI: every frame as displayed (composited over the earlier ones). An
  APNG whose default image is outside the animation has it as frame 0: browsers without APNG show it.
- MPO (stereo pairs, Ultra HDR gain maps), multi-page TIFF, DCX, HEIF with several top-level images,
  SPIDER stacks: every image; a viewer may show any of them.
- ICO: every size in the directory (browsers pick one by display size). ICNS and CUR: the size Pillow
  picks only (Pillow cannot switch them).
- PSD: the merged picture and every layer.

Work is bounded before pixels are decoded: each frame's size is checked against the bomb limit from its
header; more than ``max_frames`` frames make the upload ``unhashable: too_many_frames`` (from the declared
count when the header has one, else as the next frame is reached); and the frames after the first may
decode at most ``max_total_pixels`` between them (also ``too_many_frames``). The worker's deadline
bounds the rest.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass

from PIL import IcoImagePlugin, Image, MpoImagePlugin, PsdImagePlugin

from gate.hashing import vips
from gate.hashing.decode import Decoded, DecodeFailure, decode_frame
from gate.hashing.orientation import Orientation, orientation_of
from gate.types import Unhashable


@dataclass(frozen=True, slots=True)
class Frame:
    index: int  # 0 = the picture the image opens on; then in the container's order
    decoded: Decoded
    orientation: Orientation | None  # how viewers turn it for display (EXIF); None: as stored


@dataclass(slots=True)
class Budget:
    """What one upload may still decode, across every frame of every decoder's reading of it."""

    max_frames: int
    max_total_pixels: int  # frames after the very first, together
    max_pixels: int  # any one frame (the bomb limit)
    frames: int = 0
    pixels: int = 0

    def check_declared(self, count: int) -> None:
        if self.frames + count > self.max_frames:
            raise self._too_many(f"{count} frames declared")

    def take(self, size: tuple[int, int]) -> None:
        """Account for the next frame from its header, before its pixels are decoded."""
        width, height = size
        if width * height > self.max_pixels:
            raise DecodeFailure(
                Unhashable.BOMB,
                f"a frame of {width}x{height} is {width * height} pixels, over the limit of {self.max_pixels}",
            )
        if self.frames >= self.max_frames:
            raise self._too_many(f"more than {self.max_frames} frames")
        if self.frames and self.pixels + width * height > self.max_total_pixels:
            raise DecodeFailure(
                Unhashable.TOO_MANY_FRAMES,
                f"frames after the first add up to over {self.max_total_pixels} pixels "
                "([hashing] max_total_pixels)",
            )
        if self.frames:
            self.pixels += width * height
        self.frames += 1

    def _too_many(self, what: str) -> DecodeFailure:
        return DecodeFailure(
            Unhashable.TOO_MANY_FRAMES, f"{what}, over [hashing] max_frames ({self.max_frames})"
        )


def frames(
    im: Image.Image,
    reopen: Callable[[], Image.Image],
    budget: Budget,
    *,
    reduce: bool,
    as_hma: bool = True,
    body: bytes | None = None,
) -> Generator[Frame, None, None]:
    """Decode each frame of ``im`` in turn. ``reopen`` gives a fresh copy of the same reading (JPEG's
    reduced decode leaves an MPO unable to seek). ``as_hma``: the picture ``im`` opened on also comes
    with the pixels HMA's hasher reads from it (``Decoded.hma``; HMA hashes that picture only).
    ``body``: the bytes ``im`` was opened from, for libvips to decode large stills from
    (gate/hashing/vips.py). Raises ``DecodeFailure`` for the budget; decoder errors propagate."""
    declared = im.__dict__.get("n_frames")  # read from the header; a property would walk the whole file
    if isinstance(declared, int) and not isinstance(declared, bool):
        budget.check_declared(declared)
    budget.take(im.size)
    fast = vips.reduced(im, body) if reduce and body is not None else None
    if fast is not None:  # a still, decoded by libvips: as the Pillow path would (no HMA view there)
        yield Frame(0, *fast)
    else:
        yield _frame(im, 0, budget, reduce=reduce, as_hma=as_hma)
    if isinstance(im, IcoImagePlugin.IcoImageFile):
        yield from _ico_sizes(im, budget, reduce=reduce)
        return
    for index, position in enumerate(_positions(im), start=1):
        current = im
        if isinstance(im, MpoImagePlugin.MpoImageFile):
            current = reopen()  # the next image, decoded at a reduced scale again
        try:
            try:
                current.seek(position)
            except EOFError:
                return
            budget.take(current.size)
            yield _frame(current, index, budget, reduce=reduce)
        finally:
            if current is not im:
                current.close()


def may_hold_several(im: Image.Image) -> bool:
    """Whether ``im`` may hold more than one picture to decode, as its header tells without reading on:
    a declared frame count over 1, or a format that can only count its frames by walking the file
    (GIF, TIFF). Only a choice of how to decode (gate/hashing/image.py reads such images' frames
    ahead in a thread): every frame is decoded and hashed either way."""
    declared = im.__dict__.get("n_frames")
    if isinstance(declared, int) and not isinstance(declared, bool):
        return declared > 1
    return isinstance(getattr(type(im), "n_frames", None), property)


def _positions(im: Image.Image) -> Iterator[int]:
    """The frame numbers to seek to, after the picture ``im`` opened on."""
    if isinstance(im, PsdImagePlugin.PsdImageFile):
        # A PSD opens on its merged picture but calls it frame 1, the first layer's number, so seeking to
        # 1 from there does nothing: last layer first reaches every one.
        return iter(range(len(im.layers), 0, -1))
    return itertools.count(1)


def _ico_sizes(im: IcoImagePlugin.IcoImageFile, budget: Budget, *, reduce: bool) -> Iterator[Frame]:
    first = im.size
    others = sorted((s for s in im.info.get("sizes", ()) if s != first), reverse=True)
    for index, size in enumerate(others, start=1):
        im.size = size
        budget.take(size)
        yield _frame(im, index, budget, reduce=reduce)


def _frame(im: Image.Image, index: int, budget: Budget, *, reduce: bool, as_hma: bool = False) -> Frame:
    # The first frame is hashed as HMA hashes it (exactly, up to 1 MP); later ones on the fast path.
    exact = index == 0 or not reduce
    decoded = decode_frame(im, max_pixels=budget.max_pixels, reduce=reduce, exact=exact, as_hma=as_hma)
    return Frame(index, decoded, orientation_of(im))


def reopener(body: bytes, pillow_format: str) -> Callable[[], Image.Image]:
    return lambda: Image.open(io.BytesIO(body), formats=[pillow_format])
