"""The ``as_hma`` variant: whenever HMA has a hash for a file, the gate looks that hash up too.

HMA's hash is threatexchange's own (``tests/support/hma_files.hma_hash``: HMA's code path, not a copy).
The invariant, over every colour mode Pillow opens from an upload: if HMA would bank a hash for the
file, that hash is among the gate's hashes (bit for bit up to 1 MP, within 2 bits on the fast path);
and the gate computes the extra hash only where HMA's differs from the picture's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gate.hashing.hasher import hash_bytes
from gate.hashing.options import HashOptions
from gate.matching.local import LocalBanks
from gate.policy.evaluate import evaluate
from gate.policy.plan import compile_plan
from gate.types import Unhashable, Variant, Verdict
from tests.fakes.hma_support import hma_rule, make_policy
from tests.support.hma_files import KINDS, Kind, bits, hma_hash
from tests.support.media import save
from tests.unit.hashing.corpus import PHOTOS, encode, photo, resized

OPTIONS = HashOptions()


def _bodies() -> dict[str, bytes]:
    im = resized("astronaut.png", 600)
    grey = im.convert("L")
    return {
        **{k.name: k.make(im) for k in KINDS},
        "cmyk_tiff": encode(im.convert("CMYK"), "TIFF"),
        "palette_bmp": encode(im.quantize(256), "BMP"),
        "palette_png_transparent": encode(im.quantize(256), "PNG", transparency=0),
        "palette_gif_64_colours": save(im.quantize(64), "GIF"),
        "grey_palette_png": encode(grey.convert("P"), "PNG"),  # index i is grey i: HMA reads the picture
        "lab_tiff": encode(im.convert("LAB"), "TIFF"),
        "grey16_dark_png": encode(Image.fromarray(np.asarray(grey).astype(np.uint16)), "PNG"),
        # HMA clips 16 bits to 8: only the blackest parts of this picture stay below white.
        "grey16_png": encode(Image.fromarray(np.asarray(grey).astype(np.uint16) * 257), "PNG"),
        "rgb_jpeg": encode(im, "JPEG"),
        "rgb_png": encode(im, "PNG"),
        "grey_jpeg": encode(grey, "JPEG"),
        "rgba_png": encode(im.convert("RGBA"), "PNG"),
        "la_png": encode(im.convert("LA"), "PNG"),
        "one_bit_gif": encode(im.convert("1"), "GIF"),  # Pillow opens a 2-colour GIF as L: HMA hashes it
    }


BODIES = _bodies()
# Where HMA reads the picture itself, or has no hash: no extra hash, no extra lookup.
SAME_AS_THE_PICTURE = {
    "grey_palette_png",
    "rgb_jpeg",
    "rgb_png",
    "grey_jpeg",
    "rgba_png",
    "la_png",
    "one_bit_gif",
}
NO_HMA_HASH = {"one_bit_png"}  # quality 0 in HMA: pdqhash reads 1-bit pixels as luma 0 or 1


@pytest.mark.parametrize("name", sorted(BODIES))
def test_hmas_hash_is_among_the_gates_and_extra_only_where_it_differs(name: str) -> None:
    body = BODIES[name]
    want = hma_hash(body)
    hashes = hash_bytes(body, OPTIONS)
    extra = [p for p in hashes.pdq if p.variant is Variant.AS_HMA]
    assert (want == "") == (name in NO_HMA_HASH), want
    if want:
        assert want in [p.hex for p in hashes.pdq]
    if name in SAME_AS_THE_PICTURE or name in NO_HMA_HASH:
        assert extra == []
    else:
        assert [(p.hex, p.frame, p.transform) for p in extra] == [(want, 0, "original")]
        pictures = [p.hex for p in hashes.pdq if p.variant is not Variant.AS_HMA]
        assert all(bits(p, want) > 31 for p in pictures)  # the reason for the variant


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
@pytest.mark.parametrize("name", PHOTOS)
def test_every_photo_as_every_kind_at_1mp_is_hmas_hash_bit_for_bit(kind: Kind, name: str) -> None:
    body = kind.make(resized(name, 1024))
    want = hma_hash(body)
    hexes = [p.hex for p in hash_bytes(body, OPTIONS).pdq]
    assert want == "" or want in hexes


@pytest.mark.parametrize("kind", [k for k in KINDS if k.name != "one_bit_png"], ids=lambda k: k.name)
@pytest.mark.parametrize("name", ["coffee.png", "retina.jpg"])
def test_phone_sized_files_on_the_fast_path_are_within_two_bits(kind: Kind, name: str) -> None:
    body = kind.make(photo(name).convert("RGB").resize((4032, 3024), Image.Resampling.BICUBIC))
    want = hma_hash(body)
    (extra,) = [p for p in hash_bytes(body, OPTIONS).pdq if p.variant is Variant.AS_HMA]
    assert bits(extra.hex, want) <= 2
    assert hash_bytes(body, OPTIONS, full_resolution=True).pdq[1].hex == want


def test_only_the_picture_hma_opens_on_gets_its_reading() -> None:
    # HMA hashes np.asarray(Image.open(file)): an animation's first frame only.
    first, second = resized("coffee.png", 400), resized("chelsea.png", 400).resize((400, 266))
    body = save(first.quantize(256), "GIF", second.quantize(256), duration=100, loop=0)
    hashes = hash_bytes(body, OPTIONS)
    assert hashes.frames == 2
    extra = [(p.hex, p.frame) for p in hashes.pdq if p.variant is Variant.AS_HMA]
    assert extra == [(hma_hash(body), 0)]
    assert {p.frame for p in hashes.pdq if p.variant is Variant.STORED} == {0, 1}


@pytest.mark.parametrize("min_quality", [0, 50])
def test_hmas_quality_rule_whatever_the_policys(min_quality: int) -> None:
    # 16 colours: the indices are too flat for HMA (quality < 50), the picture is not.
    body = encode(resized("coffee.png", 600).quantize(16), "PNG")
    assert hma_hash(body) == ""
    hashes = hash_bytes(body, HashOptions(min_pdq_quality=min_quality))
    assert [p.variant for p in hashes.pdq] == [Variant.STORED]


def test_low_quality_is_judged_on_the_picture_not_on_hmas_reading() -> None:
    # A 16-bit grey PNG using only the lowest 8 bits: black to a viewer, a picture to HMA (which clips).
    body = BODIES["grey16_dark_png"]
    hashes = hash_bytes(body, OPTIONS)
    assert hashes.unhashable is Unhashable.LOW_QUALITY
    assert [(p.hex, p.variant) for p in hashes.pdq] == [(hma_hash(body), Variant.AS_HMA)]


def test_off_it_costs_nothing_and_changes_nothing_else() -> None:
    body = BODIES["cmyk_jpeg"]
    on, off = hash_bytes(body, OPTIONS), hash_bytes(body, HashOptions(as_hma=False))
    assert [p for p in on.pdq if p.variant is not Variant.AS_HMA] == list(off.pdq)


async def test_a_local_bank_of_hmas_hashes_matches_and_the_match_names_the_variant(tmp_path: Path) -> None:
    # Local lists are often hashes others computed with threatexchange or exported from an HMA.
    body = BODIES["palette_gif"]
    (tmp_path / "shared.csv").write_text(f"signal_type,hash,label\npdq,{hma_hash(body)},from a partner\n")
    banks = LocalBanks(tmp_path)
    banks.load()
    policy = make_policy([hma_rule("partner", Verdict.REJECT, 0, banks=["shared"], sources=["local"])])
    hashes = hash_bytes(body, OPTIONS)
    result = await banks.match(hashes, compile_plan(policy))
    [match] = result.matches
    assert (match.bank, match.distance, match.variant, match.frame) == ("shared", 0, Variant.AS_HMA, 0)
    assert evaluate(policy, hashes, result).verdict is Verdict.REJECT
