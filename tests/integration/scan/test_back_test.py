"""``upload-gate check-policy NEW.toml --against-log``: a hand-built decision log replayed through a new
policy, and exactly the decisions that would flip reported, per rule and bank, with examples."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from gate.record import DecisionRecord, new_decision_id
from gate.scan.store import insert_decision
from gate.signals import MatchSource, SignalType
from gate.store.pool import Pool
from gate.types import Decision, DecisionSource, Hashes, Match, PdqHash, Uploader, Verdict
from tests.support.cids import cid_of
from tests.support.policies import RESPONSES

BANKED_PDQ = "f" * 64
CHECK = (sys.executable, "-m", "gate", "check-policy")
HEAD = (
    'on_unhashable = "reject"\non_unscannable = "forward"\non_matcher_error = "reject"\non_log_failure = "forward"\n'
    + RESPONSES
)
NEW = (
    HEAD
    + """
[[rules]]
name = "exact"
source = "local"
banks = ["blocklist"]
signal_types = ["sha256"]
action = "reject"

[[rules]]
name = "pdq-tight"
source = "local"
banks = ["blocklist"]
signal_types = ["pdq"]
max_distance = 10
action = "reject"

[[rules]]
name = "hma-any"
source = "hma"
banks = ["HMA_X"]
signal_types = ["pdq"]
max_distance = 31
action = "quarantine"
"""
)


def near(bits: int) -> str:
    """The banked PDQ hash with ``bits`` bits cleared."""
    return f"{(int(BANKED_PDQ, 16) >> bits) << bits:064x}"


def record(
    name: str,
    verdict: Verdict,
    *,
    pdq: str | None = None,
    rule: str = "no_match",
    matches: tuple[Match, ...] = (),
    days_ago: float = 1,
    source: DecisionSource = DecisionSource.UPLOAD,
) -> DecisionRecord:
    body = name.encode()
    h = Hashes(
        hashlib.sha256(body).hexdigest(), "0" * 32, "0" * 40, cid_of(body), len(body), "image/png",
        pdq=(PdqHash(pdq, 90),) if pdq else (),
    )  # fmt: skip
    d = Decision(verdict, rule, "match" if matches else "no_match", matches, "old", all_matches=matches)
    return DecisionRecord(
        new_decision_id(), DecisionRecord.now() - timedelta(days=days_ago), source, None,
        Uploader("did:plc:backtest", "access_jwt", "pds"), None, h, d, verdict,
    )  # fmt: skip


async def test_back_test_reports_what_would_flip(pool: Pool, fresh_dsn: str, tmp_path: Path) -> None:
    def local(d: int) -> Match:
        return Match(MatchSource.LOCAL, "blocklist", SignalType.PDQ, d, "blocklist.csv:2")

    hma = Match(MatchSource.HMA, "HMA_X", SignalType.PDQ, 3, "77")
    rows = {
        "newly-banked": record("newly-banked", Verdict.FORWARD),  # its SHA-256 is in the bank now
        "loose": record("loose", Verdict.REJECT, pdq=near(20), rule="pdq-31", matches=(local(20),)),
        "close": record("close", Verdict.REJECT, pdq=near(5), rule="pdq-31", matches=(local(5),)),
        "clean": record("clean", Verdict.FORWARD, pdq="0" * 64),
        "hma": record("hma", Verdict.FORWARD, pdq="a" * 64, matches=(hma,)),
        "old": record("old", Verdict.FORWARD, days_ago=60),  # banked too, but outside the window
        "retro": record("retro", Verdict.FORWARD, source=DecisionSource.RETRO),
    }
    for r in rows.values():
        await insert_decision(pool, r)
    banks = tmp_path / "banks"
    banks.mkdir()
    sha = {name: hashlib.sha256(name.encode()).hexdigest() for name in rows}
    lines = [
        f"sha256,{sha['newly-banked']}",
        f"pdq,{BANKED_PDQ}",
        f"sha256,{sha['old']}",
        f"sha256,{sha['retro']}",
    ]
    (banks / "blocklist.csv").write_text("\n".join(lines) + "\n")
    policy = tmp_path / "new.toml"
    policy.write_text(NEW)
    env = {**os.environ, "DATABASE_URL": fresh_dsn, "GATE_DATA_DIR": str(tmp_path / "var")}

    def check(*extra: str) -> str:
        done = subprocess.run(
            [*CHECK, str(policy), "--banks-dir", str(banks), "--against-log", "--since", "30d", "--examples", "3", *extra],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    report = json.loads(check("--json"))
    assert (report["judged"], report["changed"], report["unchanged"]) == (5, 3, 2)
    assert report["transitions"] == {"forward → quarantine": 1, "forward → reject": 1, "reject → forward": 1}
    flips = {(f["from"], f["to"], f["rule"], f["bank"]): f for f in report["flips"]}
    assert set(flips) == {
        ("forward", "reject", "exact", "blocklist"),
        ("forward", "quarantine", "hma-any", "HMA_X"),
        ("reject", "forward", "pdq-31", "blocklist"),  # the rule and bank that blocked it before
    }
    for key, name in (
        (("forward", "reject", "exact", "blocklist"), "newly-banked"),
        (("forward", "quarantine", "hma-any", "HMA_X"), "hma"),
        (("reject", "forward", "pdq-31", "blocklist"), "loose"),
    ):
        assert flips[key]["count"] == 1
        assert flips[key]["examples"] == [
            {"id": rows[name].id, "cid": cid_of(name.encode()), "source": "upload"}
        ]

    # What the operator reads: the same counts, each group under its transition, with its example.
    ok, *text = check().splitlines()
    assert ok.startswith("OK ") and ok.endswith(": 3 rules")  # the policy checks out first
    assert text[0].startswith(f"back-test of policy {ok.split()[1].rstrip(':')} against 5 decisions since ")
    assert text[1] == "would change: 3   unchanged: 2"
    assert text[2:] == [
        "  forward → quarantine: 1",
        f"    rule hma-any, bank HMA_X: 1   e.g. {rows['hma'].id} {cid_of(b'hma')}",
        "  forward → reject: 1",
        f"    rule exact, bank blocklist: 1   e.g. {rows['newly-banked'].id} {cid_of(b'newly-banked')}",
        "  reject → forward: 1",
        f"    rule pdq-31, bank blocklist: 1   e.g. {rows['loose'].id} {cid_of(b'loose')}",
    ]
