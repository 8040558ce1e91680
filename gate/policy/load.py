"""Parse and validate the policy file into a frozen ``Policy``.

The file is the operator's judgement, so a mistake in it must never quietly become a default: every
problem is collected with its key path (``rules[2].max_distance: 300 is outside 0-256``) and raised
together in one ``PolicyError``. Nothing is guessed; the only defaults are the documented optional keys.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from pathlib import Path

from gate.errors import ConfigError
from gate.policy.model import Policy
from gate.policy.parser import DEFAULT_QUARANTINE, DEFAULT_REJECT, PolicyParser

__all__ = [
    "DEFAULT_QUARANTINE",
    "DEFAULT_REJECT",
    "PolicyError",
    "load_policy",
    "parse_policy",
    "policy_version",
]


class PolicyError(ConfigError, ValueError):
    """The policy file is invalid. ``problems`` lists every mistake, each with its key path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: invalid policy ({len(self.problems)} problem(s)):\n{lines}")


def policy_version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def load_policy(path: str | Path, known_banks: Mapping[str, frozenset[str]] | None = None) -> Policy:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from exc
    return parse_policy(data, source=str(path), known_banks=known_banks)


def parse_policy(
    data: bytes, *, source: str, known_banks: Mapping[str, frozenset[str]] | None = None
) -> Policy:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(source, [f"the file is not UTF-8 (byte {exc.start})"]) from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(source, [f"TOML syntax error: {exc}"]) from exc
    parser = PolicyParser(known_banks or {})
    policy = parser.policy(raw, policy_version(data))
    if parser.problems or policy is None:
        raise PolicyError(source, parser.problems)
    return policy
