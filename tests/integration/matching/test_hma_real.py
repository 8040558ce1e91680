"""The HMA assertions against a deployment set up only through HMA's own API.

Runs twice: against the fake HMA (always, so this suite cannot rot) and against a real HMA when
``HMA_URL`` is set (marker ``hma_real``), so operators can check their own deployment:

    HMA_URL=http://127.0.0.1:5000 pytest -m hma_real tests/integration/matching/test_hma_real.py

It creates two banks of its own (``UPLOAD_GATE_TEST_<random>_A`` / ``_B``), adds one generated image to
each through ``POST /c/bank/<NAME>/content`` (two hashes: HMA's one-hash-index bug stays away), waits
until both are matchable (HMA's indexer needs 40-90 s), runs the assertions, and deletes its content.
A third bank (``..._COMPAT``) gets the files HMA hashes differently from the picture (a CMYK JPEG, a
palette PNG and GIF) through the same call, and a 1-bit PNG, for which HMA has no hash, by the gate's
hash; each is then uploaded through the real gate and must be refused, its clean sibling forwarded.
HMA's API has no bank deletion: the three empty banks stay behind.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
import httpx
import numpy as np
import pytest
from PIL import Image

from gate.hashing.hasher import hash_bytes
from gate.hashing.options import HashOptions
from gate.matching.hma_banks import HmaBankCheck
from gate.matching.hma_client import HmaCallError, HmaClient
from gate.matching.hma_command import check
from gate.policy.evaluate import evaluate
from gate.policy.plan import compile_plan
from gate.signals import SignalType
from gate.types import PdqHash, Verdict
from tests.fakes.hma import fake_hma_in_thread
from tests.fakes.hma_support import flip, hma_rule, image_hashes, make_matcher, make_policy
from tests.integration.conftest import GateFactory
from tests.support.hma_files import HMA_CANNOT_BANK, KINDS, PHOTOS, Kind, hma_hash
from tests.support.images import photo
from tests.support.policies import head
from tests.support.upstream import RecordingUpstream

REAL_URL = os.environ.get("HMA_URL", "")
TARGETS = [
    pytest.param("fake", id="fake"),
    pytest.param(
        "real",
        id="real",
        marks=[
            pytest.mark.hma_real,
            pytest.mark.skipif(
                not REAL_URL, reason="HMA_URL is not set: point it at a real HMA (e.g. http://127.0.0.1:5000)"
            ),
        ],
    ),
]


@dataclass(frozen=True)
class Deployment:
    url: str
    bank_a: str
    bank_b: str
    pdq_a: str
    pdq_b: str


def picture(seed: int) -> bytes:
    """A small PNG with enough detail for a PDQ quality of 100."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).resize(
        (256, 256), Image.Resampling.BILINEAR
    )
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def set_up(url: str, wait: float) -> Iterator[Deployment]:
    suffix = secrets.token_hex(4).upper()
    banks = (f"UPLOAD_GATE_TEST_{suffix}_A", f"UPLOAD_GATE_TEST_{suffix}_B")
    added: list[tuple[str, int]] = []
    with httpx.Client(base_url=url, timeout=30, trust_env=False) as http:
        try:
            pdqs = []
            for seed, bank in enumerate(banks, 1):
                created = http.post("/c/banks", json={"name": bank, "enabled_ratio": 1.0})
                assert created.status_code == 201, created.text
                stored = http.post(
                    f"/c/bank/{bank}/content", files={"photo": ("t.png", picture(seed), "image/png")}
                )
                assert stored.status_code == 200, stored.text
                added.append((bank, stored.json()["id"]))
                pdqs.append(stored.json()["signals"]["pdq"])
            wait_matchable(http, list(zip(banks, pdqs, strict=True)), wait)
            yield Deployment(url, banks[0], banks[1], pdqs[0], pdqs[1])
        finally:
            for bank, content_id in added:
                http.delete(f"/c/bank/{bank}/content/{content_id}")


def wait_matchable(http: httpx.Client, banked: list[tuple[str, str]], wait: float) -> None:
    """Until each (bank, PDQ hash) is matchable: HMA's background indexer has run."""
    give_up = time.monotonic() + wait
    for bank, pdq in banked:
        while True:
            params = {"signal_type": "pdq", "signal": pdq, "banks": bank, "seed": "setup"}
            answer = http.get("/m/lookup", params=params)
            if answer.status_code == 200 and bank in answer.json():
                break
            assert time.monotonic() < give_up, f"{bank} not matchable after {wait:.0f}s: {answer.text}"
            time.sleep(min(5.0, wait / 20))


@pytest.fixture(scope="module", params=TARGETS)
def hma(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    if request.param == "real":
        yield from set_up(REAL_URL, wait=180)
    else:
        with fake_hma_in_thread() as fake:
            yield from set_up(fake.url, wait=10)


@dataclass(frozen=True)
class Compat:
    url: str
    bank: str
    banned: dict[str, bytes]  # by kind (tests/support/hma_files.py): the file banked


@pytest.fixture(scope="module")
def compat(hma: Deployment) -> Iterator[Compat]:
    """The files HMA hashes differently from the picture, banked as operators bank files: through HMA's
    own hasher (``POST /c/bank/X/content``). HMA has no hash for a 1-bit PNG (its hasher gives quality
    0): that one is banked by the gate's hash (``POST /c/bank/X/signal``), as the README says."""
    bank = hma.bank_a.removesuffix("_A") + "_COMPAT"
    wait = 180 if hma.url == REAL_URL else 10
    added: list[int] = []
    with httpx.Client(base_url=hma.url, timeout=30, trust_env=False) as http:
        try:
            created = http.post("/c/banks", json={"name": bank, "enabled_ratio": 1.0})
            assert created.status_code == 201, created.text
            banned: dict[str, bytes] = {}
            pdqs: list[str] = []
            for kind in KINDS:
                body = banned[kind.name] = kind.make(photo(PHOTOS[kind.name][0]))
                upload = {"photo": (kind.name, body, kind.content_type)}
                if kind.name in HMA_CANNOT_BANK:
                    assert http.post("/h/hash", files=upload).json() == {"pdq": ""}
                    value = hash_bytes(body, HashOptions()).pdq[0].hex
                    stored = http.post(f"/c/bank/{bank}/signal", json={"pdq": value})
                else:
                    stored = http.post(f"/c/bank/{bank}/content", files=upload)
                assert stored.status_code == 200, stored.text
                added.append(stored.json()["id"])
                pdqs.append(stored.json()["signals"]["pdq"])
                if kind.name not in HMA_CANNOT_BANK:  # HMA's hash is threatexchange's, run here
                    assert pdqs[-1] == hma_hash(body), kind.name
            wait_matchable(http, [(bank, pdq) for pdq in pdqs], wait)
            yield Compat(hma.url, bank, banned)
        finally:
            for content_id in added:
                http.delete(f"/c/bank/{bank}/content/{content_id}")


@pytest.mark.parametrize(
    ("bits", "verdict"),
    [(0, Verdict.REJECT), (8, Verdict.REJECT), (9, Verdict.QUARANTINE), (31, Verdict.QUARANTINE), (32, None)],
)
async def test_distances_around_the_gate_thresholds(
    hma: Deployment, bits: int, verdict: Verdict | None
) -> None:
    policy = make_policy(
        [
            hma_rule("close", Verdict.REJECT, 8, banks=[hma.bank_a]),
            hma_rule("near", Verdict.QUARANTINE, 31, banks=[hma.bank_a], shadow=True),
        ]
    )
    hashes = image_hashes(flip(hma.pdq_a, bits))
    async with make_matcher(hma.url) as matcher:
        result = await matcher.match(hashes, compile_plan(policy))
    decision = evaluate(policy, hashes, result)
    assert result.failures == ()
    if verdict is None:  # beyond HMA's own 31 bits: not even recorded
        assert decision.all_matches == ()
        return
    assert [(m.bank, m.distance, m.signal_type) for m in decision.all_matches] == [
        (hma.bank_a, bits, SignalType.PDQ)
    ]
    if verdict is Verdict.REJECT:
        assert (decision.verdict, decision.rule) == (Verdict.REJECT, "close")
    else:  # recorded, acted on only by the shadow rule
        assert (decision.verdict, decision.matches) == (Verdict.FORWARD, ())
        assert decision.shadow is not None and decision.shadow.rule == "near"


async def test_banks_filter_the_answer(hma: Deployment) -> None:
    policy = make_policy([hma_rule("any", Verdict.REJECT, 31)], hma_banks=[hma.bank_b])
    async with make_matcher(hma.url) as matcher:
        a = await matcher.match(image_hashes(hma.pdq_a), compile_plan(policy))
        b = await matcher.match(image_hashes(hma.pdq_b), compile_plan(policy))
    assert a.matches == ()
    assert [(m.bank, m.distance) for m in b.matches] == [(hma.bank_b, 0)]


async def test_distances_come_as_strings_and_unknown_banks_answer_nothing(hma: Deployment) -> None:
    params = {"signal_type": "pdq", "signal": flip(hma.pdq_a, 3), "banks": hma.bank_a, "seed": "s"}
    async with httpx.AsyncClient(base_url=hma.url, trust_env=False) as http:
        answer = (await http.get("/m/lookup", params=params)).json()
        unknown = await http.get("/m/lookup", params={**params, "banks": "UPLOAD_GATE_NO_SUCH_BANK"})
    assert answer[hma.bank_a][0]["distance"] == "3"
    assert (unknown.status_code, unknown.json()) == (200, {})


async def test_uppercase_hashes_are_refused_by_hma_and_lowercased_by_the_gate(hma: Deployment) -> None:
    client = HmaClient(hma.url)
    with pytest.raises(HmaCallError) as refused:
        await client.lookup(SignalType.PDQ, hma.pdq_a.upper())
    await client.aclose()
    assert refused.value.kind == "http_4xx"
    hashes = image_hashes(hma.pdq_a.upper())
    assert hashes.pdq == (PdqHash(hma.pdq_a.upper(), 100, "original"),)
    async with make_matcher(hma.url) as matcher:
        result = await matcher.match(
            hashes, compile_plan(make_policy([hma_rule("any", Verdict.REJECT, 31, banks=[hma.bank_a])]))
        )
    assert [m.bank for m in result.matches] == [hma.bank_a]


async def test_the_bank_check_knows_which_banks_exist(hma: Deployment) -> None:
    client = HmaClient(hma.url)
    validate = HmaBankCheck(client)
    ours = make_policy([hma_rule("r", Verdict.REJECT, 8)], hma_banks=[hma.bank_a, hma.bank_b])
    missing = make_policy(
        [hma_rule("r", Verdict.REJECT, 8)], hma_banks=[hma.bank_a, "UPLOAD_GATE_NO_SUCH_BANK"]
    )
    assert await validate(ours) == []
    problems = await validate(missing)
    await client.aclose()
    assert len(problems) == 1 and "'UPLOAD_GATE_NO_SUCH_BANK', which HMA does not have" in problems[0]


async def test_hma_is_ready_and_the_check_command_says_so(
    hma: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await check(hma.url, 5.0) == 0
    out = capsys.readouterr().out
    assert "(ready)" in out and hma.bank_a in out and "index      pdq:" in out


COMPAT_POLICY = (
    head()
    + """
[[rules]]
name = "hma-banked"
source = "hma"
banks = ["{bank}"]
signal_types = ["pdq"]
max_distance = 31
action = "reject"
"""
)


async def upload(url: str, body: bytes, content_type: str) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": "Bearer not-checked-by-the-recording-upstream", "Content-Type": content_type}
    async with aiohttp.ClientSession() as session:
        async with session.post(url + "/xrpc/com.atproto.repo.uploadBlob", data=body, headers=headers) as r:
            return r.status, await r.json(content_type=None)


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
async def test_a_file_banked_through_hmas_hasher_is_refused_by_the_gate(
    compat: Compat,
    kind: Kind,
    start_gate: GateFactory,
    upstream: tuple[RecordingUpstream, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gate.decisions")
    policy = COMPAT_POLICY.replace("{bank}", compat.bank)
    gate = await start_gate(policy=policy, GATE_HMA_URL=compat.url, GATE_HMA_CACHE_SIZE="0")
    banned = compat.banned[kind.name]
    status, answer = await upload(gate.url, banned, kind.content_type)
    assert (status, answer["error"]) == (400, "BlobRejected")
    assert upstream[0].uploads() == []
    clean = kind.make(photo(PHOTOS[kind.name][1]))
    status, _ = await upload(gate.url, clean, kind.content_type)
    assert status == 200
    assert [u.body for u in upstream[0].uploads()] == [clean]
    refused, forwarded = [
        json.loads(r.getMessage().removeprefix("decision "))
        for r in caplog.records
        if r.name == "gate.decisions"
    ]
    variant = "stored" if kind.name in HMA_CANNOT_BANK else "as_hma"
    assert [(m["bank"], m["distance"], m["variant"]) for m in refused["matches"]] == [
        (compat.bank, 0, variant)
    ]
    assert (forwarded["verdict"], forwarded["matches"]) == ("forward", [])
