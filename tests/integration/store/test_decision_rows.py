"""Every column of the decisions row, for a forward, a reject, a quarantine and a shadow decision."""

from __future__ import annotations

import ipaddress
import json
import uuid
from pathlib import Path

from gate.record import DecisionRecord

from . import records as R
from .conftest import fetch_rows, make_log

T = "0000000000000000000000000000000000000000000000000000000000000"  # 61 zeros: sha256 prefix


def _hash_columns(n: int, media_type: str) -> dict[str, object]:
    return {
        "media_type": media_type,
        "size": 1000 + n,
        "sha256": T + f"00{n}",
        "md5": f"{n:032x}",
        "sha1": f"{n:040x}",
        "cid": f"bafkreitest0000000{n}",
        "phash": None,
        "dhash": None,
        "width": 64,
        "height": 48,
        "media_types": [media_type],
        "frames": 1,
        "unhashable": None,
        "unhashable_detail": None,
    }


def _match(
    source: str,
    bank: str,
    signal: str,
    distance: int | None,
    cid: str,
    label: str | None,
    query: str | None,
    frame: int | None = None,
    variant: str | None = None,
) -> dict[str, object]:
    return {
        "source": source,
        "bank": bank,
        "signal": signal,
        "distance": distance,
        "content_id": cid,
        "label": label,
        "query_hash": query,
        "frame": frame,
        "variant": variant,
    }


def _pdq(value: str, transform: str, frame: int = 0, variant: str = "stored") -> dict[str, object]:
    return {"hash": value, "quality": 87, "transform": transform, "frame": frame, "variant": variant}


CSAM = _match("hma", "ncmec", "pdq", 12, "c-881", "csam", "abc", 2, "displayed")
FAR = _match("hma", "stopncii", "pdq", 70, "s-9", None, "abc")
TERROR = _match("local", "tvec", "sha256", None, "t-1", None, None)


def _expected(record: DecisionRecord) -> dict[str, object]:
    """What an operator must find in the row, written out by hand per case."""
    common = {
        "id": uuid.UUID(hex=record.id),
        "time": record.time,
        "source": "upload",
        "policy_version": "p-2026-11-24",
        # What only scans and retro-hunts fill in: an upload did nothing more, re-judges nothing and is
        # judged before any record uses the blob.
        "actions": [],
        "origin": None,
        "records": [],
        "record_uri": None,
    }
    if record.decision and record.decision.rule == "csam-pdq":
        return (
            common
            | _hash_columns(2, "image/jpeg")
            | {
                "client_ip": ipaddress.ip_address("2001:db8::5"),
                "did": "did:plc:bad",
                "did_method": "service_auth",
                "did_verified": True,
                "claimed_did": "did:plc:bad",
                "verified_how": "pds",
                "declared_type": "image/jpeg",
                "media_types": ["image/jpeg", "video/mp4"],
                "frames": 3,
                "pdq": [_pdq(f"{2:064x}"[::-1], "original"), _pdq(f"{3:064x}", "rotate270", 2, "displayed")],
                "verdict": "reject",
                "rule": "csam-pdq",
                "reason": "match",
                "matches": [CSAM],
                "all_matches": [CSAM, FAR],
                "shadow_verdict": None,
                "shadow_rule": None,
                "shadow_matches": [],
                "shadow_only": False,
                "full_scan": True,
                "notes": [],
                "timings_ms": {"read": 0.5, "hash": 6.0, "match": 15.0},
                "upstream_status": None,
                "error": None,
                "cached": False,
            }
        )
    if record.decision and record.decision.rule == "on_matcher_error":
        return common | {
            "client_ip": None,
            "did": None,
            "did_method": "none",
            "did_verified": False,
            "claimed_did": None,
            "verified_how": None,
            "declared_type": None,
            "media_type": "image/png",
            "size": 5,
            "sha256": T + "003",
            "md5": f"{3:032x}",
            "sha1": f"{3:040x}",
            "cid": "bafkreitest00000003",
            "pdq": [],
            "phash": None,
            "dhash": None,
            "width": None,
            "height": None,
            "media_types": [],
            "frames": None,
            "unhashable": "low_quality",
            "unhashable_detail": "quality 12 < 50",
            "verdict": "quarantine",
            "rule": "on_matcher_error",
            "reason": "matcher_error",
            "matches": [],
            "all_matches": [],
            "shadow_verdict": None,
            "shadow_rule": None,
            "shadow_matches": [],
            "shadow_only": False,
            "full_scan": False,
            "notes": ["hma: timeout"],
            "timings_ms": {"read": 0.1},
            "upstream_status": None,
            "error": "hma timeout after 2.0s",
            "cached": False,
        }
    if record.decision and record.decision.shadow:
        return (
            common
            | _hash_columns(4, "image/webp")
            | {
                "client_ip": ipaddress.ip_address("198.51.100.9"),
                "did": "did:web:example.com",
                "did_method": "oauth",
                "did_verified": True,
                "claimed_did": "did:web:example.com",
                "verified_how": "pds",
                "declared_type": "image/webp",
                "pdq": [],
                "verdict": "forward",
                "rule": "default",
                "reason": "no_match",
                "matches": [],
                "all_matches": [TERROR],
                "shadow_verdict": "reject",
                "shadow_rule": "trial-terror",
                "shadow_matches": [TERROR],
                "shadow_only": True,
                "full_scan": True,
                "notes": [],
                "timings_ms": {"read": 0.2, "hash": 3.0, "match": 1.0, "upstream": 12.0},
                "upstream_status": 200,
                "error": None,
                "cached": True,
            }
        )
    return (
        common
        | _hash_columns(1, "image/png")
        | {
            "client_ip": ipaddress.ip_address("203.0.113.7"),
            "did": "did:plc:user1",
            "did_method": "access_jwt",
            "did_verified": True,
            "claimed_did": "did:plc:user1",
            "verified_how": "pds",
            "declared_type": "image/png",
            "pdq": [_pdq(f"{1:064x}"[::-1], "original"), _pdq(f"{2:064x}", "rot90")],
            "verdict": "forward",
            "rule": "default",
            "reason": "no_match",
            "matches": [],
            "all_matches": [],
            "shadow_verdict": None,
            "shadow_rule": None,
            "shadow_matches": [],
            "shadow_only": False,
            "full_scan": True,
            "notes": [],
            "timings_ms": {"read": 1.25, "hash": 7.5, "match": 2.0, "upstream": 30.125},
            "upstream_status": 200,
            "error": None,
            "cached": False,
        }
    )


JSONB = (
    "pdq",
    "matches",
    "all_matches",
    "shadow_matches",
    "notes",
    "timings_ms",
    "media_types",
    "actions",
    "records",
)


async def test_every_field_for_forward_reject_quarantine_shadow(fresh_dsn: str, tmp_path: Path) -> None:
    records = [R.forward(1), R.reject(2), R.quarantine(3), R.shadow(4)]
    log = make_log(fresh_dsn, tmp_path / "spool")
    await log.start()
    for record in records:
        log.submit(record)
    await log.wait_idle()
    await log.close()

    rows = await fetch_rows(fresh_dsn)
    assert len(rows) == 4
    for record, row in zip(records, rows, strict=True):
        got = {k: (json.loads(v) if k in JSONB else v) for k, v in row.items()}
        assert got == _expected(record), record.decision.rule if record.decision else record.id
    assert log.spool.pending_records == 0


async def test_hostile_strings_do_not_sink_a_batch(fresh_dsn: str, tmp_path: Path) -> None:
    """A client-controlled string with a NUL (Postgres text cannot hold one) is stored, not refused."""
    good = R.forward(1)
    nul = DecisionRecord(
        **{
            **{f: getattr(R.forward(2), f) for f in DecisionRecord.__dataclass_fields__},
            "declared_type": "image/png\x00<script>",
            "error": "bad\x00byte, \\\x00, and \\u0000 as text",
            "timings_ms": {"read\x00": 1.0},
            "client_ip": "203.0.113.999",  # never from the pipeline, which parses it; still not fatal
        }
    )
    log = make_log(fresh_dsn, tmp_path / "spool")
    await log.start()
    log.submit(good)
    log.submit(nul)
    await log.wait_idle()
    await log.close()
    rows = await fetch_rows(fresh_dsn)
    assert [r["id"] for r in rows] == [uuid.UUID(hex=good.id), uuid.UUID(hex=nul.id)]
    assert rows[1]["declared_type"] == "image/png\ufffd<script>"
    # A NUL becomes U+FFFD wherever it is (a backslash before it stays); the text "\u0000" is text.
    assert rows[1]["error"] == "bad\ufffdbyte, \\\ufffd, and \\u0000 as text"
    assert json.loads(rows[1]["timings_ms"]) == {"read\ufffd": 1.0}
    assert rows[1]["client_ip"] is None
    assert log.spool.pending_records == 0 and not log.spool.rejected_path.exists()


async def test_a_malformed_record_does_not_stop_the_writer(fresh_dsn: str, tmp_path: Path) -> None:
    fields = {f: getattr(R.forward(1), f) for f in DecisionRecord.__dataclass_fields__}
    broken = DecisionRecord(**{**fields, "id": "not-a-decision-id"})
    good = R.forward(2)
    log = make_log(fresh_dsn, tmp_path / "spool")
    await log.start()
    log.submit(broken)
    log.submit(good)
    await log.wait_idle()
    log.submit(R.forward(3))
    await log.close()
    rows = await fetch_rows(fresh_dsn)
    assert [r["did"] for r in rows] == ["did:plc:user2", "did:plc:user3"]


async def test_a_lone_surrogate_sets_only_its_own_row_aside(fresh_dsn: str, tmp_path: Path) -> None:
    """Header bytes that are not UTF-8 reach Python as lone surrogates: that row is refused and kept
    for the operator (the rejected file), and the rows beside it are stored, the writer still running."""
    fields = {f: getattr(R.forward(2), f) for f in DecisionRecord.__dataclass_fields__}
    odd = DecisionRecord(**{**fields, "declared_type": "image/\udcff"})
    log = make_log(fresh_dsn, tmp_path / "spool")
    await log.start()
    for record in (R.forward(1), odd, R.forward(3)):
        log.submit(record)
    await log.wait_idle()
    log.submit(R.forward(4))
    await log.close()
    rows = await fetch_rows(fresh_dsn)
    assert [r["did"] for r in rows] == ["did:plc:user1", "did:plc:user3", "did:plc:user4"]
    assert odd.id[:8] in log.spool.rejected_path.read_text()
