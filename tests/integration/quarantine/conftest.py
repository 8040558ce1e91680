"""Evidence-store fixtures: a keyring in memory, a store on a fresh database, judged upload records."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from gate.quarantine.keys import Keyring, new_key
from gate.record import DecisionRecord, new_decision_id
from gate.signals import SignalType
from gate.store.evidence import Evidence
from gate.store.pool import Pool
from gate.types import Decision, DecisionSource, Hashes, Match, Uploader, Verdict

DID = "did:plc:uploaderclaimed00000000"


def make_keyring() -> Keyring:
    key = new_key()
    return Keyring([key], key.id)


def judged(
    body: bytes, verdict: Verdict = Verdict.QUARANTINE, when: datetime | None = None
) -> DecisionRecord:
    """A decision record for ``body`` as the pipeline would build it (hashes real, CID made up)."""
    sha = hashlib.sha256(body).hexdigest()
    hashes = Hashes(
        sha256=sha,
        md5=hashlib.md5(body).hexdigest(),
        sha1=hashlib.sha1(body).hexdigest(),
        cid="bafkrei" + sha[:52],
        size=len(body),
        media_type="image/jpeg",
    )
    match = Match("local", "review", SignalType.SHA256, None, content_id="c-1")
    decision = Decision(verdict, "hold-exact", "match", (match,), "v1", all_matches=(match,))
    return DecisionRecord(
        id=new_decision_id(),
        time=when or datetime.now(UTC),
        source=DecisionSource.UPLOAD,
        client_ip="127.0.0.1",
        uploader=Uploader(DID, "access_jwt", "pds", DID),
        declared_type="image/jpeg",
        hashes=hashes,
        decision=decision,
        verdict=verdict,
    )


@pytest.fixture
def keyring() -> Keyring:
    return make_keyring()


@pytest.fixture
async def store(fresh_dsn: str, keyring: Keyring) -> AsyncIterator[Evidence]:
    s = Evidence.on(Pool(fresh_dsn), keyring)
    await s.db.get()  # (migrates)
    yield s
    await s.db.close()
