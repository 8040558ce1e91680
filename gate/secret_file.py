"""Secret files (the evidence keyring, the labeler key): JSON only their owner may read, written whole.

A secret file others can read, or its group can write, is refused; its group may read it only when root
owns it — PostgreSQL's rule for its server key, and what a Kubernetes Secret mounted with ``fsGroup``
looks like (root:fsGroup, mode 0440). Files are written with mode 0600 through a temporary file in the
same directory, so no reader ever sees half a key.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from gate.errors import ConfigError


def owner_only(st: os.stat_result) -> bool:
    """Owner-only; or, for a root-owned file, group-readable too (see the module docstring)."""
    group_may = stat.S_IRGRP if st.st_uid == 0 else 0
    return not st.st_mode & ((stat.S_IRWXG & ~group_may) | stat.S_IRWXO)


def read_secret(path: Path, what: str, hint: str, error: type[ConfigError]) -> Any:
    """The JSON in ``path``. ``what`` names the file in messages ("the labeler key"), ``hint`` says how
    to make one; every refusal (missing, open to others, not JSON) raises ``error`` saying what to do."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}; {hint}") from None
    if not owner_only(st):
        raise error(
            f"{what} {path} is open to others (mode {stat.S_IMODE(st.st_mode):o}); run: chmod 600 {path}"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise error(f"{what} {path} is not valid JSON: {exc}") from None


def write_secret(path: Path, text: str, *, replace: bool) -> None:
    """Write ``text`` to ``path`` with mode 0600. ``replace``: atomically over an existing file; else
    the file must not exist (``FileExistsError``, even if it appeared meanwhile: never a silent
    overwrite)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
