"""``upload-gate serve`` that must not start says why in one ``upload-gate:`` line and exits 2, as a
supervisor expects of a configuration error — never a traceback."""

from __future__ import annotations

from pathlib import Path

from tests.support import boot

ROOT = boot.ROOT


def serve(tmp_path: Path, **extra: str) -> tuple[int, str]:
    done = boot.refused(
        {
            "GATE_POLICY": str(ROOT / "config" / "policy.toml"),
            "GATE_BANKS_DIR": str(ROOT / "config" / "banks"),
            "GATE_DATA_DIR": str(tmp_path / "var"),
            "GATE_LISTEN": "127.0.0.1:0",
            "GATE_METRICS_LISTEN": "127.0.0.1:0",
            "GATE_EVIDENCE_KEY": boot.TEST_EVIDENCE_KEY,
            **extra,
        }
    )
    return done.returncode, done.stderr


def test_a_bank_file_that_cannot_be_read_is_said_in_one_line(tmp_path: Path) -> None:
    banks = tmp_path / "banks"
    banks.mkdir()
    (banks / "blocklist.csv").write_bytes(b"\xff\xfe not text")
    code, stderr = serve(tmp_path, GATE_BANKS_DIR=str(banks))
    assert code == 2, stderr
    assert "upload-gate: cannot start:" in stderr and "blocklist.csv" in stderr
    assert "Traceback" not in stderr


def test_an_unusable_labeler_key_is_said_in_one_line(tmp_path: Path) -> None:
    code, stderr = serve(tmp_path, GATE_LABELER_DID="did:plc:labeler", GATE_LABELER_KEY="not-a-key")
    assert code == 2, stderr
    assert "upload-gate: cannot start:" in stderr and "GATE_LABELER_KEY" in stderr
    assert "Traceback" not in stderr
