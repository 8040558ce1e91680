"""The evidence keyring: which AES-256 keys seal evidence, and the envelope encryption itself.

Keys come from a keyring file (``GATE_EVIDENCE_KEYS_FILE``, JSON, created by ``upload-gate keys init``
with mode 0600) or from one key in ``GATE_EVIDENCE_KEY`` — never from the database, so a stolen
database dump (or backup) holds only ciphertext. A keyring file others can read is refused
(``gate.secret_file`` says exactly when).

Envelope: every item gets its own random 256-bit data key. The bytes are sealed with AES-256-GCM under
that data key (random 96-bit nonce, the decision id as associated data), and the data key is wrapped with
AES-256-GCM under the keyring's active key (own random nonce, same associated data). Rotation therefore
re-wraps a 32-byte data key per item — the upload bytes themselves are never decrypted to rotate. The
associated data binds a ciphertext to its decision: moved to another row, it no longer opens.

File format::

    {"format": "upload-gate-keyring/1", "active": "k…",
     "keys": [{"id": "k…", "key": "<base64 of 32 bytes>", "created": "2026-…Z"}]}
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gate.errors import ConfigError, GateError
from gate.secret_file import read_secret, write_secret

FORMAT = "upload-gate-keyring/1"
KEY_BYTES = 32
NONCE_BYTES = 12
INIT_HINT = "create one with `upload-gate keys init` and set GATE_EVIDENCE_KEYS_FILE to its path"


class KeyringError(ConfigError):
    """The keyring is missing, unreadable, malformed or unsafe; the message says what to do."""


class MissingEvidenceKey(KeyringError):
    """The policy can keep evidence and no key is configured: a missing key, not an invalid policy."""


class EvidenceUnreadable(GateError):
    """A sealed item did not open: wrong or retired key, tampered bytes, or another item's data."""


@dataclass(frozen=True, slots=True)
class Key:
    id: str
    secret: bytes = field(repr=False)
    created: str = ""


@dataclass(frozen=True, slots=True)
class Sealed:
    """What is stored per item. ``wrapped_key`` is wrap nonce ‖ AES-GCM(key, data key)."""

    key_id: str
    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes


def associated_data(decision_id: str) -> bytes:
    """The decision id, canonicalised (32 lower-case hex digits), whatever form the caller holds."""
    return uuid.UUID(str(decision_id)).hex.encode("ascii")


def new_key() -> Key:
    secret = AESGCM.generate_key(bit_length=256)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Key(f"k{stamp}-{secrets.token_hex(3)}", secret, datetime.now(UTC).isoformat())


def _decode_secret(text: object, where: str) -> bytes:
    try:
        raw = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"{where}: not base64") from None
    if len(raw) != KEY_BYTES:
        raise KeyringError(f"{where}: expected {KEY_BYTES} bytes (AES-256), got {len(raw)}")
    return raw


class Keyring:
    def __init__(self, keys: list[Key], active: str, path: Path | None = None) -> None:
        self.keys = {k.id: k for k in keys}
        if active not in self.keys:
            raise KeyringError(f"active key {active!r} is not in the keyring")
        self.active = self.keys[active]
        self.path = path

    # ---- loading ---------------------------------------------------------------------------------

    @classmethod
    def configured(cls, keys_file: Path | None, env_key: str | None) -> Keyring | None:
        """The keyring the settings name, or None when no key is configured at all."""
        if keys_file is not None and env_key:
            raise KeyringError("set GATE_EVIDENCE_KEYS_FILE or GATE_EVIDENCE_KEY, not both")
        if keys_file is not None:
            return cls.load(keys_file)
        if env_key:
            return cls.from_env(env_key)
        return None

    @classmethod
    def from_env(cls, value: str) -> Keyring:
        """One base64 key; its id is derived from the key so the same key always has the same id."""
        secret = _decode_secret(value.strip(), "GATE_EVIDENCE_KEY")
        key_id = "env-" + hashlib.sha256(b"upload-gate key id\0" + secret).hexdigest()[:12]
        return cls([Key(key_id, secret)], key_id)

    @classmethod
    def load(cls, path: Path) -> Keyring:
        return cls._parse(read_secret(path, "the evidence keyring", INIT_HINT, KeyringError), path)

    @classmethod
    def _parse(cls, data: Any, path: Path) -> Keyring:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise KeyringError(f"{path}: not an upload-gate keyring (expected format {FORMAT!r})")
        items = data.get("keys")
        if not isinstance(items, list) or not items:
            raise KeyringError(f"{path}: keys: expected a non-empty list")
        keys: list[Key] = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
                raise KeyringError(f"{path}: keys[{i}]: expected {{id, key, created}}")
            keys.append(
                Key(
                    item["id"],
                    _decode_secret(item.get("key"), f"{path}: keys[{i}].key"),
                    str(item.get("created", "")),
                )
            )
        if len({k.id for k in keys}) != len(keys):
            raise KeyringError(f"{path}: duplicate key ids")
        return cls(keys, str(data.get("active")), path)

    # ---- the file --------------------------------------------------------------------------------

    def to_json(self) -> str:
        items = [
            {"id": k.id, "key": base64.b64encode(k.secret).decode("ascii"), "created": k.created}
            for k in self.keys.values()
        ]
        return json.dumps({"format": FORMAT, "active": self.active.id, "keys": items}, indent=2) + "\n"

    def save(self, path: Path | None = None, *, create: bool = False) -> None:
        """Write atomically with mode 0600 (a temporary file in the same directory, then rename)."""
        target = path or self.path
        if target is None:
            raise KeyringError("this keyring has no file (it came from GATE_EVIDENCE_KEY)")
        if create and target.exists():
            raise KeyringError(f"{target} already exists; refusing to overwrite a keyring")
        write_secret(target, self.to_json(), replace=True)
        self.path = target

    def add_active(self, key: Key) -> None:
        self.keys[key.id] = key
        self.active = key

    def retire(self, key_id: str) -> None:
        if key_id not in self.keys:
            raise KeyringError(f"no key {key_id!r} in the keyring")
        if key_id == self.active.id:
            raise KeyringError(f"{key_id} is the active key; rotate first (`upload-gate keys rotate`)")
        del self.keys[key_id]

    # ---- sealing ---------------------------------------------------------------------------------

    def seal(self, plaintext: bytes, decision_id: str) -> Sealed:
        aad = associated_data(decision_id)
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, aad)
        return Sealed(self.active.id, self._wrap(self.active, data_key, aad), nonce, ciphertext)

    def open(self, sealed: Sealed, decision_id: str) -> bytes:
        aad = associated_data(decision_id)
        data_key = self._unwrap(sealed.key_id, sealed.wrapped_key, aad)
        try:
            return AESGCM(data_key).decrypt(sealed.nonce, sealed.ciphertext, aad)
        except (InvalidTag, ValueError):
            raise EvidenceUnreadable(
                f"evidence {decision_id} does not decrypt (tampered or misplaced)"
            ) from None

    def rewrap(self, key_id: str, wrapped_key: bytes, decision_id: str) -> tuple[str, bytes]:
        """The item's data key re-wrapped under the active key: (new key id, new wrapped key)."""
        aad = associated_data(decision_id)
        data_key = self._unwrap(key_id, wrapped_key, aad)
        return self.active.id, self._wrap(self.active, data_key, aad)

    @staticmethod
    def _wrap(key: Key, data_key: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(key.secret).encrypt(nonce, data_key, aad)

    def _unwrap(self, key_id: str, wrapped_key: bytes, aad: bytes) -> bytes:
        key = self.keys.get(key_id)
        if key is None:
            raise EvidenceUnreadable(f"key {key_id!r} is not in the keyring (retired or a different keyring)")
        try:
            return AESGCM(key.secret).decrypt(wrapped_key[:NONCE_BYTES], wrapped_key[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError):
            raise EvidenceUnreadable(f"the data key does not unwrap with key {key_id!r}") from None
