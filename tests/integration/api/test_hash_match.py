"""POST /api/v1/hash and /api/v1/match on a running gate: the hashes are the gate's own (as `upload-gate
hash` prints them), matches come from the banks the policy names (local and HMA), bad input is a clear XRPC 400, and every
call leaves an audit row with the token's name."""

from __future__ import annotations

import base64
import hashlib
import json

from gate.hashing.hasher import hash_bytes
from gate.hashing.options import HashOptions
from tests.fakes.hma import FakeHma
from tests.fakes.hma_support import OTHER_PDQ
from tests.integration.api.conftest import PHOTO, ApiGate, api_gate
from tests.integration.conftest import GateFactory
from tests.integration.matching.test_hma_gate import hma_env
from tests.integration.matching.test_hma_gate import policy as hma_policy
from tests.support import images
from tests.support.upstream import RecordingUpstream


async def test_hash_answers_every_hash_as_the_cli_prints_them(api: ApiGate) -> None:
    async with api.client() as c:
        async with c.post("/api/v1/hash", data=PHOTO, headers={"Content-Type": "image/jpeg"}) as r:
            assert r.status == 200, await r.text()
            answer = await r.json()
        as_json = {"data": base64.b64encode(PHOTO).decode()}
        async with c.post("/api/v1/hash", json=as_json) as r:
            assert r.status == 200
            assert await r.json() == answer  # the same bytes sent as base64 in JSON
    expected = hash_bytes(PHOTO, api.gate.deps.judge.policy.plan.hashing).to_json()
    assert answer == json.loads(json.dumps(expected))
    assert answer["sha256"] == hashlib.sha256(PHOTO).hexdigest() and answer["media_type"] == "image/jpeg"
    assert len(answer["pdq"]) >= 1 and answer["pdq"][0]["quality"] > 50
    assert [(a["actor"], a["action"], a["subject"]) for a in await api.audit()] == [
        ("the-service", "api_hash", answer["sha256"])
    ] * 2


async def test_hash_options_and_content_encoding(api: ApiGate) -> None:
    import gzip

    async with api.client() as c:
        async with c.post("/api/v1/hash?dihedral=true&phash=true", data=PHOTO) as r:
            answer = await r.json()
        async with c.post(
            "/api/v1/hash", data=gzip.compress(PHOTO), headers={"Content-Encoding": "gzip"}
        ) as r:
            decoded = await r.json()
        async with c.post("/api/v1/hash?dihedral=maybe", data=PHOTO) as r:
            assert r.status == 400
            assert await r.json() == {"error": "InvalidRequest", "message": "dihedral must be true or false"}
    assert len({p["transform"] for p in answer["pdq"] if p["variant"] == "dihedral"}) == 7
    assert answer["phash"] is not None
    assert decoded["sha256"] == hashlib.sha256(PHOTO).hexdigest()  # the decoded bytes, as the PDS stores


async def test_malformed_bodies_are_clear_xrpc_errors(api: ApiGate) -> None:
    async with api.client() as c:
        for body, message in (
            (b"{not json", "the body is not valid JSON"),
            (b"[1, 2]", "expected a JSON object"),
            (b'{"data": "not base64!"}', "data must be the bytes (at least one) in standard base64"),
            (b'{"data": ""}', "data must be the bytes (at least one)"),
            (b'{"data": "AAAA", "extra": 1}', "the body: unknown field 'extra'"),
            (b"{}", 'expected {"data": "<base64>"}'),
        ):
            async with c.post("/api/v1/hash", data=body, headers={"Content-Type": "application/json"}) as r:
                assert r.status == 400, body
                answer = await r.json()
                assert answer["error"] == "InvalidRequest" and answer["message"].startswith(message), answer
        async with c.post("/api/v1/hash", data=b"") as r:
            assert (r.status, (await r.json())["error"]) == (400, "InvalidRequest")
        async with c.post("/api/v1/hash", data=b"x", headers={"Content-Encoding": "zstd"}) as r:
            assert (r.status, (await r.json())["error"]) == (415, "UnsupportedMediaType")
        async with c.get("/api/v1/hash") as r:
            assert (r.status, (await r.json())["error"]) == (405, "MethodNotAllowed")
            assert r.headers["Allow"] == "POST"
        async with c.get("/api/v1/nothing-here") as r:
            assert (r.status, (await r.json())["error"]) == (404, "NotFound")


async def test_match_finds_exact_and_perceptual_hits_in_the_policys_banks(api: ApiGate) -> None:
    near = hash_bytes(images.near_duplicate(), api.gate.deps.judge.policy.plan.hashing).pdq[0].hex
    photo = hash_bytes(PHOTO, api.gate.deps.judge.policy.plan.hashing)
    async with api.client() as c:
        async with c.post("/api/v1/match", json={"sha256": photo.sha256.upper()}) as r:
            assert r.status == 200, await r.text()
            exact = await r.json()
        async with c.post("/api/v1/match", json={"pdq": [p.hex for p in photo.pdq]}) as r:
            perceptual = await r.json()
        async with c.post("/api/v1/match", json={"md5": "0" * 32, "cid": photo.cid}) as r:
            nothing = await r.json()
    [hit] = exact["matches"]
    assert (hit["source"], hit["bank"], hit["signal"], hit["label"]) == (
        "local",
        "blocklist",
        "sha256",
        "known-bad",
    )
    assert exact["failures"] == [] and exact["policy_version"] == api.gate.deps.policy.current.version
    # The photograph is within the review bank's distance of its near duplicate's PDQ.
    assert [(m["bank"], m["signal"]) for m in perceptual["matches"]] == [("review", "pdq")]
    assert 0 < perceptual["matches"][0]["distance"] <= 31 and near
    assert nothing["matches"] == []
    audit = await api.audit()
    assert [a["action"] for a in audit] == ["api_match"] * 3
    assert json.loads(audit[0]["detail"])["banks"] == ["local:blocklist"]
    assert audit[0]["subject"] == photo.sha256 and audit[0]["actor"] == "the-service"


async def test_match_refuses_what_is_not_a_hash(api: ApiGate) -> None:
    async with api.client() as c:
        for body, message in (
            ({}, "give at least one hash"),
            ({"media_type": "image/jpeg"}, "give at least one hash"),
            ({"sha256": "abc"}, "sha256: expected 64 hex digits"),
            ({"pdq": []}, "pdq must be a list of 1 to 256"),
            ({"pdq": ["f" * 64] * 257}, "pdq must be a list of 1 to 256"),
            ({"pdq": ["g" * 64]}, "pdq[0]: expected 64 hex digits"),
            ({"cid": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvykv"}, "cid: expected a CIDv1"),
            ({"sha1": 5}, "sha1 must be a string"),
            ({"sha256": "0" * 64, "sha512": "0"}, "the body: unknown field 'sha512'"),
        ):
            async with c.post("/api/v1/match", json=body) as r:
                assert r.status == 400, body
                answer = await r.json()
                assert answer["error"] == "InvalidRequest" and answer["message"].startswith(message), answer
        async with c.post("/api/v1/match", data=b"sha256=00") as r:
            assert (r.status, (await r.json())["error"]) == (415, "UnsupportedMediaType")
    assert await api.audit() == []  # refused before anything was looked up


async def test_match_asks_hma_too_and_names_a_matcher_that_could_not_answer(
    start_gate: GateFactory, upstream: tuple[RecordingUpstream, str], fresh_dsn: str
) -> None:
    """The fake HMA (a real server speaking HMA's API) and the local banks are both asked, as the policy's
    rules say; when HMA fails, the local matches still come back and the failure is named."""
    astronaut = images.jpeg("astronaut.png")
    hashed = hash_bytes(astronaut, HashOptions())
    async with FakeHma() as hma:
        hma.add_bank("HMA_BLOCK")
        hma.add_signal("HMA_BLOCK", "pdq", hashed.pdq[0].hex)
        hma.add_signal("HMA_BLOCK", "pdq", OTHER_PDQ)  # a second hash: HMA's one-hash-index bug stays away
        api = await api_gate(
            start_gate,
            upstream,
            fresh_dsn,
            policy=hma_policy(),
            banks={"blocklist": f"sha256,{hashed.sha256},known bad"},
            **hma_env(hma),
        )
        asked = {"sha256": hashed.sha256, "pdq": [hashed.pdq[0].hex]}
        async with api.client() as c:
            async with c.post("/api/v1/match", json=asked) as r:
                assert r.status == 200, await r.text()
                both = await r.json()
            hma.fail = "http_500"
            async with c.post("/api/v1/match", json=asked) as r:
                degraded = await r.json()
        assert sorted((m["source"], m["bank"], m["signal"]) for m in both["matches"]) == [
            ("hma", "HMA_BLOCK", "pdq"),
            ("local", "blocklist", "sha256"),
        ]
        assert both["failures"] == []
        assert [lookup["banks"] for lookup in hma.lookups][:1] == ["HMA_BLOCK"]  # the policy's HMA banks
        assert [(m["source"], m["bank"]) for m in degraded["matches"]] == [("local", "blocklist")]
        assert degraded["failures"] == [{"matcher": "hma", "kind": "http_5xx"}]
