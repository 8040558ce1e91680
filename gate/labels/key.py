"""``LabelerKey``: the labeler's secp256k1 signing key — made, kept, and used to sign labels.

Kept like the evidence keyring (``gate.quarantine.keys``): a JSON file with mode 0600 made by
``upload-gate labeler init`` (``GATE_LABELER_KEY_FILE``) or one hex key in ``GATE_LABELER_KEY`` — never
in the database, so a database dump cannot forge labels in the labeler's name.

Signatures are what atproto asks of labels (atproto.com/specs/label, /specs/cryptography): ECDSA over
secp256k1 with SHA-256, as 64 bytes ``r‖s``, and always the low-S form — verifiers (@atproto/crypto)
refuse the high-S twin so a signature cannot be re-shaped into a second valid one. The public key is
published as a ``did:key`` (multicodec secp256k1-pub, compressed point, base58btc), formatted by the
atproto SDK's own ``atproto_crypto``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from atproto_crypto.consts import SECP256K1_CURVE_ORDER, SECP256K1_JWT_ALG
from atproto_crypto.did import format_did_key
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gate.errors import ConfigError
from gate.secret_file import read_secret, write_secret

FORMAT = "upload-gate-labeler-key/1"
INIT_HINT = "create one with `upload-gate labeler init` and set GATE_LABELER_KEY_FILE to its path"
ORDER: int = SECP256K1_CURVE_ORDER
HALF_ORDER = ORDER // 2


class LabelerKeyError(ConfigError):
    """The labeler key is missing, unreadable, malformed or unsafe; the message says what to do."""


def _secret(text: object, where: str) -> int:
    raw = str(text).strip().lower()
    if len(raw) != 64 or any(c not in "0123456789abcdef" for c in raw):
        raise LabelerKeyError(f"{where}: expected 64 hex digits (a 32-byte secp256k1 private key)")
    value = int(raw, 16)
    if not 0 < value < ORDER:
        raise LabelerKeyError(f"{where}: not a valid secp256k1 private key")
    return value


@dataclass(frozen=True)
class LabelerKey:
    private: ec.EllipticCurvePrivateKey = field(repr=False)
    created: str = ""
    path: Path | None = None

    @classmethod
    def generate(cls) -> LabelerKey:
        return cls(ec.generate_private_key(ec.SECP256K1()), datetime.now(UTC).isoformat())

    @classmethod
    def from_hex(cls, text: str, where: str = "GATE_LABELER_KEY") -> LabelerKey:
        return cls(ec.derive_private_key(_secret(text, where), ec.SECP256K1()))

    @classmethod
    def configured(cls, key_file: Path | None, env_key: str | None) -> LabelerKey | None:
        """The key the settings name, or None when none is configured."""
        if key_file is not None and env_key:
            raise LabelerKeyError("set GATE_LABELER_KEY_FILE or GATE_LABELER_KEY, not both")
        if key_file is not None:
            return cls.load(key_file)
        return cls.from_hex(env_key) if env_key else None

    @classmethod
    def load(cls, path: Path) -> LabelerKey:
        data: Any = read_secret(path, "the labeler key", INIT_HINT, LabelerKeyError)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise LabelerKeyError(f"{path}: not an upload-gate labeler key (expected format {FORMAT!r})")
        key = cls(
            ec.derive_private_key(_secret(data.get("private_key"), f"{path}: private_key"), ec.SECP256K1()),
            str(data.get("created", "")),
            path,
        )
        if data.get("did_key") not in (None, key.did_key):
            raise LabelerKeyError(f"{path}: did_key does not belong to private_key")
        return key

    def save(self, path: Path) -> LabelerKey:
        """Write a new file with mode 0600; an existing file is never replaced (labels signed with it
        would stop verifying once the DID document names the new key)."""
        if path.exists() or path.is_symlink():
            raise LabelerKeyError(f"{path} already exists; refusing to overwrite a labeler key")
        body = {
            "format": FORMAT,
            "did_key": self.did_key,
            "private_key": f"{self.private.private_numbers().private_value:064x}",
            "created": self.created,
        }
        write_secret(path, json.dumps(body, indent=2) + "\n", replace=False)
        return LabelerKey(self.private, self.created, path)

    @property
    def public_point(self) -> bytes:
        """The uncompressed SEC1 point (the form atproto_crypto compresses into a did:key)."""
        return self.private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    @property
    def did_key(self) -> str:
        did: str = format_did_key(SECP256K1_JWT_ALG, self.public_point)
        return did

    @property
    def multibase(self) -> str:
        """The public key as a DID document's ``publicKeyMultibase``."""
        return self.did_key.removeprefix("did:key:")

    def sign(self, data: bytes) -> bytes:
        """ECDSA-SHA256 of ``data``: 64 bytes r‖s, low-S."""
        r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
        if s > HALF_ORDER:
            s = ORDER - s
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
