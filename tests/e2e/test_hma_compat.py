"""Files banked through HMA's own hasher are refused when the identical file is uploaded (issue 13, item 5).

HMA hashes a CMYK JPEG from its ink planes and a palette PNG or GIF from its palette indices: 220–256
bits from the picture's hash, so before the ``as_hma`` variant such a file, banked through HMA's
``POST /c/bank/X/content``, was forwarded when uploaded. Here the fake HMA (a real server following
HMA 1.1.7's API) hashes what it is given with threatexchange, HMA's own code path; a gate of its own, in
front of the session's real PDS, has one rule on that HMA bank. Each banked file, posted through the
real ``atproto`` SDK as an app posts an image, is refused and never reaches the PDS's blob store, and
the decision says the match was HMA's reading of the file; the same kind of file made from another
photograph is forwarded and stored, its ``as_hma`` hash asked of HMA too.

A 1-bit PNG is the case HMA decides itself: its hasher gives 1-bit pixels quality 0, so HMA banks no
hash for the file. It is banked the way the README says, by the gate's hash (``upload-gate hash`` →
``POST /c/bank/X/signal``), and then refused on that.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from atproto_client.exceptions import BadRequestError

from tests.e2e import gate_server
from tests.e2e.endpoints import Endpoint, User, new_user
from tests.e2e.gate_server import REJECT_ERROR, Gate
from tests.e2e.images import sha256
from tests.e2e.pds_server import Pds
from tests.fakes.hma import FakeHma, fake_hma_in_thread
from tests.support.boot import gate_command
from tests.support.cids import cid_of
from tests.support.hma_files import HMA_CANNOT_BANK, KINDS, PHOTOS, Kind, hma_hash
from tests.support.images import photo

pytestmark = [
    pytest.mark.e2e,
    # The atproto SDK uploads blobs with httpx's data=<bytes>.
    pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning"),
]

BANK = "HMA_COMPAT"
POLICY = f"""
on_unhashable = "reject"
on_unscannable = "forward"
on_matcher_error = "reject"
on_log_failure = "forward"
on_low_quality = "forward"
allowlist_banks = []

[responses.reject]
status = 400
error = "{REJECT_ERROR}"
message = "e2e: this image is banned here"

[[rules]]
name = "hma-banned"
source = "hma"
banks = ["{BANK}"]
signal_types = ["pdq"]
max_distance = 31
action = "reject"
"""


@pytest.fixture(scope="module")
def hma() -> Iterator[FakeHma]:
    with fake_hma_in_thread() as fake:
        created = httpx.post(f"{fake.url}/c/banks", json={"name": BANK, "enabled_ratio": 1.0})
        assert created.status_code == 201, created.text
        yield fake


@pytest.fixture(scope="module")
def banked(hma: FakeHma, e2e_dir: Path) -> dict[str, bytes]:
    """Each kind of file made from its banned photograph, banked through HMA's API as operators do."""
    files: dict[str, bytes] = {}
    for kind in KINDS:
        body = kind.make(photo(PHOTOS[kind.name][0]))
        files[kind.name] = body
        answer = httpx.post(
            f"{hma.url}/c/bank/{BANK}/content", files={"photo": (kind.name, body, kind.content_type)}
        )
        assert answer.status_code == 200, answer.text
        if kind.name not in HMA_CANNOT_BANK:
            assert answer.json()["signals"] == {"pdq": hma_hash(body)}
            continue
        assert answer.json()["signals"] == {} and hma_hash(body) == ""  # HMA stored nothing
        path = e2e_dir / f"hma-compat-{kind.name}"
        path.write_bytes(body)
        printed = gate_command("hash", "--json", str(path))
        assert printed.returncode == 0, printed.stderr
        (doc,) = json.loads(printed.stdout)
        by_hash = httpx.post(f"{hma.url}/c/bank/{BANK}/signal", json={"pdq": doc["pdq"][0]["hash"]})
        assert by_hash.status_code == 200, by_hash.text
    return files


@pytest.fixture(scope="module")
def hma_gate(e2e_dir: Path, pds: Pds, hma: FakeHma) -> Iterator[Gate]:
    policy = e2e_dir / "hma-compat-policy.toml"
    policy.write_text(POLICY)
    extra = {"GATE_HMA_URL": hma.url, "GATE_POLICY": str(policy), "GATE_HMA_CACHE_SIZE": "0"}
    server = gate_server.start(e2e_dir, pds.url, {}, name="hma-compat-gate", extra_env=extra)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def user(hma_gate: Gate) -> Iterator[User]:
    made = new_user(Endpoint("hma-compat-gate", hma_gate.url, True))
    yield made
    made.client.request.close()


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_a_file_banked_through_hma_is_refused_and_its_clean_sibling_stored(
    kind: Kind, banked: dict[str, bytes], hma_gate: Gate, pds: Pds, user: User, hma: FakeHma
) -> None:
    body = banked[kind.name]
    before = pds.blob_files()
    with pytest.raises(BadRequestError) as refused:
        user.post_image(body)
    assert refused.value.response is not None
    assert (refused.value.response.status_code, refused.value.response.content.error) == (400, REJECT_ERROR)
    assert pds.stored_since(before) == {}  # (the gate's empty-body probe leaves only a 0-byte blob)
    assert sha256(body) not in pds.blob_files().values()
    (row,) = hma_gate.decisions(cid_of(body))
    assert (row["verdict"], row["rule"]) == ("reject", "hma-banned")
    matches = row["matches"]
    assert isinstance(matches, list)
    variant = "stored" if kind.name in HMA_CANNOT_BANK else "as_hma"
    assert [(m["source"], m["bank"], m["distance"], m["variant"]) for m in matches] == [
        ("hma", BANK, 0, variant)
    ]

    clean = kind.make(photo(PHOTOS[kind.name][1]))
    user.post_image(clean)  # an app's post: the blob is uploaded, then a record embeds it
    assert sha256(clean) in pds.blob_files().values()
    (row,) = hma_gate.decisions(cid_of(clean))
    assert (row["verdict"], row["rule"], row["matches"]) == ("forward", "no_match", [])
    asked = {q["signal"] for q in hma.lookups}
    pdq = row["pdq"]
    assert isinstance(pdq, list)
    assert {p["hash"] for p in pdq} <= asked  # every hash of the clean file, its as_hma one included
    if kind.name not in HMA_CANNOT_BANK:
        assert hma_hash(clean) in asked
