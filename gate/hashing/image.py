"""All the perceptual hashes of one body, as one plain value (it crosses the worker socket as JSON).

Judge the picture every viewer sees (design.md): every decoder that opens the bytes
(gate/hashing/formats.py), every frame of each reading (gate/hashing/frames.py), and each frame both as
stored and as displayed after its EXIF orientation (gate/hashing/orientation.py), and each reading's
first frame as HMA's own hasher reads it where that differs (``as_hma``: palette indices, CMYK's C, M,
Y planes; gate/hashing/hma_view.py). A match on any of these hashes is a match. Identical frames are
hashed once (identical as PDQ reads them, stored and displayed), and a hash is listed once (at its
first frame).

When is an upload unhashable: when a decoder that opened the bytes could not decode one of its frames,
when the bytes claim a format viewers show and its decoder cannot read them, past the frame budget, or
when every frame is too flat for PDQ (``low_quality``: judged on the picture, never on HMA's reading
of it). Hashes of the frames that did decode are kept either way: a match on them still counts. Bytes no decoder opens get no perceptual hash and no reason:
they are the policy's ``on_unscannable``.
"""

from __future__ import annotations

import hashlib
import warnings
from contextlib import closing
from dataclasses import dataclass, replace

from gate.hashing.decode import Decoded, DecodeFailure, as_later_frame, read_luma
from gate.hashing.formats import OpenFailure, failure_of, open_all, short
from gate.hashing.frames import Budget, Frame, frames, may_hold_several, reopener
from gate.hashing.hma_view import HMA_MIN_QUALITY
from gate.hashing.options import HashOptions
from gate.hashing.pdq import downsample_of, pdq_of, pdq_of_downsample
from gate.hashing.pdq_downsample import Floats
from gate.hashing.perceptual import perceptual
from gate.hashing.read_ahead import ReadAhead
from gate.types import PdqHash, Unhashable, Variant


@dataclass(frozen=True, slots=True)
class ImageHashes:
    pdq: tuple[PdqHash, ...] = ()
    phash: str | None = None  # of the first frame
    dhash: str | None = None
    unhashable: Unhashable | None = None
    unhashable_detail: str | None = None
    width: int | None = None  # of the first frame
    height: int | None = None
    media_types: tuple[str, ...] = ()  # what the image decoders read the bytes as, in order
    frames: int | None = None  # pictures decoded (identical frames included)


def hash_image(
    body: bytes, sniffed: str, options: HashOptions, *, reduce: bool = True, read_ahead: bool = False
) -> ImageHashes:
    """Every perceptual hash of a body whose magic bytes say ``sniffed``. Never raises for bad input:
    what cannot be hashed comes back as ``unhashable`` with its reason and a short detail.

    ``reduce=False`` hashes every frame at full resolution, as HMA does (slow; for tests and banks).
    ``read_ahead``: an animation's frames are decoded in a second thread while the one before is hashed
    in this one (the hashing workers, gate/hashing/worker.py); the same hashes, sooner when a core is
    free. Off, everything runs in the caller's thread.
    """
    hashes = _Hashes(options)
    # Decoders of hostile files warn about everything (odd sizes, broken EXIF, truncated chunks). The
    # answer is the same whether or not warnings are errors (as under pytest), and none is actionable.
    # (catch_warnings is per process: a hashing worker hashes one body at a time, and the thread that
    # reads its frames ahead ends inside this block.)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for item in open_all(body, sniffed):
            hashes.media_type(item.media_type)
            if isinstance(item, OpenFailure):
                hashes.fail(item.reason, item.detail, item.media_type)
                continue
            offset = hashes.frames
            with item.image as im:
                decoded = frames(
                    im,
                    reopener(body, item.name),
                    hashes.budget,
                    reduce=reduce,
                    as_hma=options.as_hma,
                    body=body if options.libvips else None,
                )
                try:
                    # An animation's frames are decoded in a thread while the one before is hashed
                    # here (Pillow's decoders and the native PDQ call release the GIL): it then takes
                    # about the longer of the two, not their sum (gate/hashing/read_ahead.py). A still
                    # is not worth the thread.
                    ahead = read_ahead and may_hold_several(im)
                    pipeline = ReadAhead(decoded, name="gate-frames") if ahead else closing(decoded)
                    with pipeline as ready:
                        for frame in ready:
                            hashes.add(frame, offset + frame.index)
                except DecodeFailure as failure:
                    hashes.fail(failure.reason, failure.detail, item.media_type)
                except Exception as exc:
                    hashes.fail(*failure_of(exc, body), item.media_type)
    return hashes.result()


class _Hashes:
    def __init__(self, options: HashOptions) -> None:
        self.options = options
        self.budget = Budget(options.max_frames, options.max_total_pixels, options.max_image_pixels)
        self.pdq: dict[str, PdqHash] = {}  # by hex, in order: the first frame that gave a hash keeps it
        self.seen: set[bytes] = set()  # digests of the downsamples already hashed
        self.exact: Frame | None = None  # a first frame hashed exactly, not yet in ``seen``
        self.types: list[str] = []
        self.failure: tuple[Unhashable, str] | None = None
        self.flat: int | None = None  # the best quality of the frames too flat to hash
        self.frames = 0
        self.first: ImageHashes | None = None  # phash, dhash, size of the first frame

    def media_type(self, media_type: str) -> None:
        if media_type not in self.types:
            self.types.append(media_type)

    def fail(self, reason: Unhashable, detail: str, media_type: str) -> None:
        if self.failure is None:  # the first failure is the reason; it was met first
            where = "" if media_type == self.types[0] else f"{media_type}: "
            self.failure = (reason, short(where + detail))

    def add(self, frame: Frame, index: int) -> None:
        self.frames += 1
        frame = replace(frame, decoded=read_luma(frame.decoded))
        self._add_picture(frame, index)
        if frame.decoded.hma is not None:  # after the picture's own hashes: a hash keeps its first label
            self._add_as_hma(frame.decoded, index)

    def _add_picture(self, frame: Frame, index: int) -> None:
        decoded, dihedral = frame.decoded, self.options.dihedral
        shown: Floats | None = None  # the downsample of the picture as displayed, once computed
        if decoded.scale is None:  # exact: PDQ's own hash of the full-resolution pixels
            found, quality = pdq_of(decoded, dihedral=dihedral)
            self.exact = frame
        else:
            if self.exact is not None:  # an animation after all: later frames may repeat the first
                first = self.exact
                self.seen.add(_digest(*_downsamples(replace(first, decoded=as_later_frame(first.decoded)))))
                self.exact = None
            luma, shown = _downsamples(frame)
            # Identical frames (a GIF holding a picture for several frame times) are hashed once. The
            # key is all PDQ reads of the frame, as stored and as displayed, so a frame is skipped only
            # when each hash it gives is already there; the digest is collision-resistant.
            key = _digest(luma, shown)
            if key in self.seen:
                return
            self.seen.add(key)
            found, quality = pdq_of_downsample(luma, dihedral=dihedral)
        if self.first is None:
            phash, dhash = (None, None)
            if quality >= self.options.min_pdq_quality:
                phash, dhash = perceptual(decoded.pixels, phash=self.options.phash, dhash=self.options.dhash)
            self.first = ImageHashes(phash=phash, dhash=dhash, width=decoded.width, height=decoded.height)
        if quality < self.options.min_pdq_quality:
            # A flat or featureless frame: its hash is noise that would match other flat pictures.
            self.flat = max(quality, self.flat or 0)
            return
        stored, *turned = found
        self._keep(replace(stored, frame=index, variant=Variant.STORED))
        if frame.orientation is not None:
            if shown is None:
                shown = downsample_of(decoded, frame.orientation)
            (displayed,), seen_quality = pdq_of_downsample(shown)
            if seen_quality >= self.options.min_pdq_quality:
                self._keep(
                    replace(
                        displayed,
                        transform=frame.orientation.transform,
                        frame=index,
                        variant=Variant.DISPLAYED,
                    )
                )
        for other in turned:
            self._keep(replace(other, frame=index, variant=Variant.DIHEDRAL))

    def _add_as_hma(self, decoded: Decoded, index: int) -> None:
        """HMA's hash of the frame (the pixels its hasher reads), kept under HMA's own rule: quality 50,
        whatever the policy's cut-off (HMA stores nothing below it, and banks anything above). Neither
        dihedral nor displayed: HMA hashes the stored grid as it is, and this hash exists only so that a
        file banked through HMA matches itself."""
        assert decoded.hma is not None
        (found,), quality = pdq_of(replace(decoded, pixels=decoded.hma, luma=None))
        if quality >= HMA_MIN_QUALITY:
            self._keep(replace(found, frame=index, variant=Variant.AS_HMA))

    def _keep(self, pdq: PdqHash) -> None:
        self.pdq.setdefault(pdq.hex, pdq)

    def result(self) -> ImageHashes:
        first = self.first or ImageHashes()
        reason, detail = self.failure if self.failure else (None, None)
        pictured = any(p.variant is not Variant.AS_HMA for p in self.pdq.values())
        if reason is None and not pictured and self.flat is not None:
            reason = Unhashable.LOW_QUALITY
            detail = f"PDQ quality {self.flat} is below {self.options.min_pdq_quality}"
        return ImageHashes(
            pdq=tuple(self.pdq.values()),
            phash=first.phash,
            dhash=first.dhash,
            unhashable=reason,
            unhashable_detail=detail,
            width=first.width,
            height=first.height,
            media_types=tuple(self.types),
            frames=self.frames if self.types else None,
        )


def _downsamples(frame: Frame) -> tuple[Floats, Floats | None]:
    """PDQ's downsample of the frame as stored, and as displayed when it has an orientation."""
    shown = None if frame.orientation is None else downsample_of(frame.decoded, frame.orientation)
    return downsample_of(frame.decoded), shown


def _digest(luma: Floats, shown: Floats | None = None) -> bytes:
    digest = hashlib.blake2b(luma.tobytes(), digest_size=32)
    if shown is not None:
        digest.update(shown.tobytes())
    return digest.digest()
