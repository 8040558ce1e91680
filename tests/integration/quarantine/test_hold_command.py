"""``upload-gate evidence hold`` / ``lift-hold`` as an operator runs them: the hold is recorded with its
reason and the operator's name, shown by ``evidence list``, audited, and keeps ``evidence purge`` off
the item until it is lifted."""

from __future__ import annotations

import getpass
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gate.quarantine.keys import Keyring
from gate.store.evidence import Evidence
from gate.store.pool import Pool
from gate.store.retention import Retention

from .conftest import judged
from .test_commands import env, gate

__all__ = ["env"]  # the fixture, shared with the other command tests


async def test_hold_keeps_purge_away_until_lifted(env: dict[str, str], fresh_dsn: str) -> None:
    assert gate(env, "keys", "init").returncode == 0
    store = Evidence.on(Pool(fresh_dsn), Keyring.load(Path(env["GATE_EVIDENCE_KEYS_FILE"])))
    try:
        expired = judged(b"expired but wanted", when=datetime.now(UTC) - timedelta(days=31))
        await store.vault.keep(expired, b"expired but wanted", Retention(hold_days=30))
        item_id = str(uuid.UUID(expired.id))

        refused = gate(env, "evidence", "hold", item_id)
        assert refused.returncode == 2 and "--reason" in refused.stderr  # argparse: the reason is required
        blank = gate(env, "evidence", "hold", item_id, "--reason", "  ")
        assert blank.returncode == 2 and "needs a reason" in blank.stderr and "Traceback" not in blank.stderr

        done = gate(env, "evidence", "hold", item_id, "--reason", "subpoena 26-CV-114")
        assert done.returncode == 0, done.stderr
        actor = "cli:" + getpass.getuser()
        assert done.stdout == f"legal hold placed on {item_id} by {actor}: subpoena 26-CV-114\n"
        again = gate(env, "evidence", "hold", item_id, "--reason", "another")
        assert again.returncode == 2 and "already under legal hold (subpoena 26-CV-114" in again.stderr
        listed = gate(env, "evidence", "list")
        assert listed.returncode == 0 and item_id in listed.stdout and "legal-hold" in listed.stdout

        purge = gate(env, "evidence", "purge")
        assert purge.returncode == 0 and "0 expired item(s) purged" in purge.stdout
        assert await store.vault.decrypt(item_id, "t", "check") == b"expired but wanted"

        lifted = gate(
            env, "evidence", "lift-hold", item_id, "--reason", "case dismissed", "--actor", "counsel"
        )
        assert lifted.returncode == 0, lifted.stderr
        assert lifted.stdout.startswith(f"legal hold lifted from {item_id}\nits retention deadline (")
        assert "the next purge deletes it" in lifted.stdout
        purge = gate(env, "evidence", "purge")
        assert f"purged {item_id}" in purge.stdout

        trail = [(e.actor, e.action) for e in await store.audit.trail(item_id)]
        assert (actor, "legal_hold") in trail and ("counsel", "legal_hold_lifted") in trail
        assert trail.index(("counsel", "legal_hold_lifted")) < trail.index((actor, "purge"))
    finally:
        await store.db.close()
