"""The gate as operators run it (``tests.support.boot``: ``python -m gate serve``) with GATE_* settings, a
policy and banks.

The test policy uses its own XRPC error names, so a refusal seen by the SDK can only have come from
this policy; the banks are built with ``python -m gate hash`` (the gate's own hashing).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import boot
from tests.support.boot import GateProcess, gate_command

REPO = Path(__file__).resolve().parents[2]

REJECT_ERROR = "BannedContent"
QUARANTINE_ERROR = "HeldForReview"

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

[responses.quarantine]
status = 400
error = "{QUARANTINE_ERROR}"
message = "e2e: this image is held for review"

[[rules]]
name = "banned-exact"
source = "local"
banks = ["banned"]
signal_types = ["sha256"]
action = "reject"

[[rules]]
name = "banned-pdq"
source = "local"
banks = ["banned"]
signal_types = ["pdq"]
max_distance = 31
action = "reject"

[[rules]]
name = "held"
source = "local"
banks = ["held"]
signal_types = ["sha256", "pdq"]
max_distance = 31
action = "quarantine"
"""


def bank_rows(path: Path) -> list[str]:
    """``signal_type,hash,label`` rows for a file, as the gate hashes it."""
    result = gate_command("hash", "--json", str(path))
    assert result.returncode == 0, result.stderr
    (doc,) = json.loads(result.stdout)
    rows = [f"sha256,{doc['sha256']},e2e"]
    rows += [f"pdq,{p['hash']},e2e" for p in doc["pdq"]]
    assert len(rows) > 1, f"{path}: no PDQ hash ({doc})"
    return rows


@dataclass
class Gate:
    proc: GateProcess
    env: dict[str, str] = field(repr=False)
    admin_token: str = field(default="", repr=False)  # an admin review token (upload-gate admin token add)

    @property
    def url(self) -> str:
        return self.proc.url

    @property
    def port(self) -> int:
        return self.proc.port

    @property
    def metrics_url(self) -> str:
        return self.proc.admin_url

    @property
    def metrics_port(self) -> int:
        return self.proc.admin_port

    def stop(self) -> None:
        self.proc.stop(timeout=30, check=False)  # the gate stops its embedded Postgres on the way out
        shutil.rmtree(self.env["GATE_DATA_DIR"], ignore_errors=True)

    def decisions(self, cid: str) -> list[dict[str, Any]]:
        """The decision log's rows for a CID, oldest first, read the way an operator would: with
        ``upload-gate decisions``, which joins the gate's embedded Postgres in GATE_DATA_DIR."""
        result = gate_command("decisions", "--cid", cid, "--json", "--limit", "10000", env=self.env)
        assert result.returncode == 0, result.stderr
        rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        return rows[::-1]  # the command lists newest first


def start(
    workdir: Path,
    upstream: str,
    banks: dict[str, list[Path]],
    pds_admin_password: str | None = None,
    *,
    name: str = "gate",
    extra_env: dict[str, str] | None = None,
    policy_text: str = POLICY,
) -> Gate:
    root = workdir / name
    banks_dir = root / "banks"
    banks_dir.mkdir(parents=True)
    for bank, files in banks.items():
        rows = [row for f in files for row in bank_rows(f)]
        (banks_dir / f"{bank}.csv").write_text("signal_type,hash,label\n" + "\n".join(rows) + "\n")
    policy = root / "policy.toml"
    policy.write_text(policy_text)
    # The data directory (embedded Postgres) lives outside pytest's temp tree: when running as root the
    # embedded server runs as another user that needs o+x on every parent, and every pytest run on the
    # machine resets /tmp/pytest-of-<user> to 0700.
    data_dir = Path(tempfile.mkdtemp(prefix="upload-gate-e2e-"))
    settings = boot.gate_env(upstream, "", policy, banks_dir, data_dir) | {
        "GATE_TRUSTED_PROXIES": "127.0.0.1/32",
    }
    if pds_admin_password:  # review actions may take accounts down on this PDS
        settings["GATE_PDS_ADMIN_PASSWORD"] = pds_admin_password
    settings |= extra_env or {}
    env = boot.process_env(settings)
    # A review token made the way an operator makes one (in the gate's own embedded Postgres).
    made = gate_command("admin", "token", "add", "e2e-admin", "--role", "admin", env=env)
    assert made.returncode == 0, made.stderr
    try:
        proc = boot.start(settings, root, ready=True)
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    return Gate(proc, env, admin_token=made.stdout.strip())
