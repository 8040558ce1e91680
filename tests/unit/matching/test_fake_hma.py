"""The fake HMA follows hma-api.md: the tests elsewhere are only as good as this fake."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.fakes.hma import FakeHma
from tests.fakes.hma_support import BASE_PDQ, OTHER_PDQ, flip


def png(seed: int, flat: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = (
        np.full((64, 64, 3), 128, np.uint8) if flat else rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    )
    out = io.BytesIO()
    Image.fromarray(pixels).resize((128, 128), Image.Resampling.BILINEAR).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
async def http(fake_hma: FakeHma) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake_hma.url, trust_env=False) as client:
        yield client


def lookup(signal: str, **extra: str) -> dict[str, str]:
    return {"signal_type": "pdq", "signal": signal, "seed": "s", **extra}


async def test_lookup_answers_string_distances_grouped_by_bank(http: httpx.AsyncClient) -> None:
    answer = await http.get("/m/lookup", params=lookup(flip(BASE_PDQ, 5)))
    assert answer.json() == {"BANK_A": [{"bank_content_id": 1, "distance": "5"}]}
    assert (await http.get("/m/lookup", params=lookup(flip(BASE_PDQ, 32)))).json() == {}


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        (lookup(BASE_PDQ.upper()), 400, "invalid signal: invalid PDQ hash"),
        ({"signal_type": "x", "signal": BASE_PDQ}, 400, "No such SignalType 'x'"),
        ({}, 400, "Either url or both signal and signal_type are required"),
        ({"url": "http://example.invalid/a.jpg"}, 403, None),
    ],
)
async def test_lookup_errors_are_json_messages(
    http: httpx.AsyncClient, params: dict[str, str], status: int, message: str | None
) -> None:
    answer = await http.get("/m/lookup", params=params)
    assert answer.status_code == status
    assert "message" in answer.json() and (message is None or answer.json()["message"] == message)


async def test_a_missing_parameter_is_a_422_error_list(http: httpx.AsyncClient) -> None:
    answer = await http.get("/m/lookup", params={"signal": BASE_PDQ})
    assert answer.status_code == 422 and answer.json()[0]["loc"] == ["query", "signal_type"]


async def test_video_md5_matches_exactly_with_a_dash(fake_hma: FakeHma, http: httpx.AsyncClient) -> None:
    fake_hma.add_signal("BANK_B", "video_md5", "d41d8cd98f00b204e9800998ecf8427e")
    params = {"signal_type": "video_md5", "signal": "d41d8cd98f00b204e9800998ecf8427e"}
    assert (await http.get("/m/lookup", params=params)).json() == {
        "BANK_B": [{"bank_content_id": 3, "distance": "-"}]
    }


async def test_not_ready_is_503_on_lookups_and_status(fake_hma: FakeHma, http: httpx.AsyncClient) -> None:
    fake_hma.ready = False
    answer = await http.get("/m/lookup", params=lookup(BASE_PDQ))
    assert (answer.status_code, answer.json()) == (503, {"message": "index not yet ready"})
    status = await http.get("/status")
    assert (status.status_code, status.text) == (503, "INDEX-NOT-LOADED")
    assert (await http.get("/status/live")).status_code == 200
    fake_hma.ready, fake_hma.stale = True, True
    assert (await http.get("/status")).text == "INDEX-STALE"


async def test_the_one_hash_index_bug(http: httpx.AsyncClient) -> None:
    async with FakeHma() as lonely, httpx.AsyncClient(base_url=lonely.url) as client:
        lonely.add_bank("ONLY")
        lonely.add_signal("ONLY", "pdq", BASE_PDQ)
        assert (await client.get("/m/lookup", params=lookup(BASE_PDQ))).json() == {}
        lonely.add_signal("ONLY", "pdq", OTHER_PDQ)
        assert (await client.get("/m/lookup", params=lookup(BASE_PDQ))).json() != {}


async def test_curation_routes(http: httpx.AsyncClient) -> None:
    assert (await http.post("/c/banks", json={"name": "lower"})).status_code == 400
    assert (await http.post("/c/banks", json={"name": "BANK_A"})).status_code == 403
    created = await http.post("/c/banks", json={"name": "NEW_BANK", "enabled_ratio": 0.5})
    assert (created.status_code, created.json()) == (201, {"matching_enabled_ratio": 0.5, "name": "NEW_BANK"})
    banks = (await http.get("/c/banks")).json()
    assert {"matching_enabled_ratio": 0.5, "name": "NEW_BANK"} in banks
    signal = await http.post("/c/bank/NEW_BANK/signal", json={"pdq": flip(BASE_PDQ, 40)})
    assert signal.json() == {"id": 3, "signals": {"pdq": flip(BASE_PDQ, 40)}}
    assert (await http.post("/c/bank/NOPE/signal", json={"pdq": BASE_PDQ})).status_code == 404
    stored = await http.post("/c/bank/NEW_BANK/content", files={"photo": ("p.png", png(1), "image/png")})
    content_id, pdq = stored.json()["id"], stored.json()["signals"]["pdq"]
    params = lookup(pdq, banks="NEW_BANK")
    hashed = await http.post("/h/hash", files={"photo": ("p.png", png(1), "image/png")})
    assert hashed.json() == {"pdq": pdq}
    posted = await http.post(
        "/m/lookup",
        params={"banks": "NEW_BANK", "bypass_coinflip": "true"},
        files={"photo": ("p.png", png(1), "image/png")},
    )
    assert posted.json() == {"pdq": {"NEW_BANK": [{"bank_content_id": content_id, "distance": "0"}]}}
    await http.put(f"/c/bank/NEW_BANK/content/{content_id}", json={"disable_until_ts": 0})
    assert (await http.get("/m/lookup", params={**params, "banks": "NEW_BANK"})).json() == {}
    raw = await http.get("/m/raw_lookup", params={**params, "include_distance": "true"})
    assert raw.json() == {"matches": [{"bank_content_id": content_id, "distance": "0"}]}
    await http.put(f"/c/bank/NEW_BANK/content/{content_id}", json={"disable_until_ts": 1})
    assert (await http.delete(f"/c/bank/NEW_BANK/content/{content_id}")).json() == {"deleted": 1}
    assert (await http.get("/m/raw_lookup", params=params)).json() == {"matches": []}


async def test_a_flat_image_hashes_to_an_empty_string(http: httpx.AsyncClient) -> None:
    hashed = await http.post("/h/hash", files={"photo": ("f.png", png(0, flat=True), "image/png")})
    assert hashed.json() == {"pdq": ""}
    assert (
        await http.post("/m/lookup", files={"photo": ("x.txt", b"not an image", "text/plain")})
    ).status_code == 500


async def test_new_content_waits_for_the_index_rebuild(http: httpx.AsyncClient, fake_hma: FakeHma) -> None:
    fake_hma.index_delay = True
    fake_hma.add_signal("BANK_B", "pdq", flip(OTHER_PDQ, 100))
    assert (await http.get("/m/lookup", params=lookup(flip(OTHER_PDQ, 100)))).json() == {}
    assert (await http.get("/m/index/status")).json()["pdq"]["size"] == 2
    fake_hma.rebuild_index()
    assert (await http.get("/m/lookup", params=lookup(flip(OTHER_PDQ, 100)))).json() != {}
    assert (await http.get("/m/index/status")).json()["pdq"]["size"] == 3
