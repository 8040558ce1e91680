"""The hashes the decision log already holds, read back for retro-hunts and back-tests.

Which decisions count as "stored": those that forwarded a blob somebody can still fetch (verdict
``forward``, a CID and a DID) and that are not themselves retro decisions. PDQ hashes stream out of
Postgres with one binary ``COPY`` (16-byte id + 32-byte hash per row, parsed by numpy without a Python
object per hash); exact hashes are looked up by value; whole rows come back as ``Hashes`` to be judged
again.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt

from gate.signals import SignalType
from gate.store.pool import Pool
from gate.store.query import row_to_json
from gate.types import Hashes, PdqHash, Unhashable, Variant

# Decisions a retro-hunt may re-judge: served blobs, judged on any path but a retro-hunt.
STORED = "verdict = 'forward' AND cid IS NOT NULL AND did IS NOT NULL AND source <> 'retro' AND time >= $1"
_PDQ_COPY = (
    "SELECT uuid_send(d.id) || decode(p->>'hash', 'hex') FROM decisions d"  # noqa: S608 (constants only)
    f" CROSS JOIN LATERAL jsonb_array_elements(d.pdq) p WHERE {STORED.replace('verdict', 'd.verdict')}"
    " AND length(p->>'hash') = 64"
)
# Binary COPY: a 19-byte header, then per row a field count (int16), a length (int32) and the 48 bytes.
_HEADER = 19
_ROW = np.dtype([("fields", ">i2"), ("length", ">i4"), ("id", "V16"), ("hash", ">u8", (4,))])
BLOCK = 200_000  # stored hashes handed on at once
EXACT_COLUMNS = {
    SignalType.SHA256: "sha256",
    SignalType.MD5: "md5",
    SignalType.SHA1: "sha1",
    SignalType.CID: "cid",
}


@dataclass(frozen=True, slots=True)
class PdqBlock:
    ids: npt.NDArray[np.void]  # 16-byte decision ids
    words: npt.NDArray[np.uint64]  # (4, n) word-major, as HammingIndex keeps them

    def decision_id(self, i: int) -> str:
        return uuid.UUID(bytes=bytes(self.ids[i])).hex


async def each_pdq_block(db: Pool, since: datetime, handle: Callable[[PdqBlock], Awaitable[None]]) -> None:
    """Every stored PDQ hash since ``since``, handed to ``handle`` ``BLOCK`` at a time as COPY streams
    (it waits for ``handle``: memory stays one block, whatever the size of the log)."""
    pending = bytearray()
    header_seen = False

    async def take(data: bytes) -> None:
        nonlocal header_seen
        pending.extend(data)
        if not header_seen and len(pending) >= _HEADER:
            del pending[:_HEADER]
            header_seen = True
        whole = len(pending) // _ROW.itemsize if header_seen else 0
        if whole >= BLOCK:
            block = _block(bytes(pending[: whole * _ROW.itemsize]))
            del pending[: whole * _ROW.itemsize]
            await handle(block)

    async with db.transaction() as conn:
        await conn.copy_from_query(_PDQ_COPY, since, output=take, format="binary")
    whole = len(pending) // _ROW.itemsize  # the 2-byte trailer is left over
    if whole:
        await handle(_block(bytes(pending[: whole * _ROW.itemsize])))


def _block(raw: bytes) -> PdqBlock:
    rows = np.frombuffer(raw, dtype=_ROW)
    words = np.ascontiguousarray(rows["hash"].T.astype(np.uint64))
    return PdqBlock(rows["id"].copy(), words)


async def stored_exact(
    db: Pool, signal: SignalType, values: Sequence[str], since: datetime
) -> list[tuple[str, str]]:
    """(decision id, value) of stored decisions whose ``signal`` hash is one of ``values``."""
    column = EXACT_COLUMNS[signal]
    rows = await db.fetch(
        f"SELECT id, {column} AS v FROM decisions WHERE {STORED} AND {column} = ANY($2::text[])",  # noqa: S608
        since,
        list(values),
    )
    return [(r["id"].hex, r["v"]) for r in rows]


async def each_decision(db: Pool, where: str, since: datetime, page: int) -> AsyncIterator[asyncpg.Record]:
    """Every decision ``where`` holds (a condition on ``$1``, which is ``since``), oldest first, read
    ``page`` rows at a time by keyset on (time, id): a row written meanwhile never shifts a page, and
    memory stays one page whatever the size of the log."""
    after: tuple[datetime, uuid.UUID] = (since, uuid.UUID(int=0))
    while True:
        rows = await db.fetch(
            f"SELECT * FROM decisions WHERE {where} AND (time, id) > ($2, $3) ORDER BY time, id LIMIT {page}",  # noqa: S608
            since,
            *after,
        )
        if not rows:
            return
        after = (rows[-1]["time"], rows[-1]["id"])
        for row in rows:
            yield row


async def decision_rows(db: Pool, ids: Sequence[str]) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT * FROM decisions WHERE id = ANY($1::uuid[])", [str(uuid.UUID(i)) for i in ids]
    )
    return [row_to_json(r) for r in rows]


def row_hashes(row: dict[str, Any]) -> Hashes:
    """A decision row's hashes as the judge takes them (what the row kept: no bytes needed)."""
    pdq = tuple(
        PdqHash(
            p["hash"],
            int(p.get("quality", 0)),
            p.get("transform", "original"),
            int(p.get("frame", 0)),
            Variant(p.get("variant", "stored")),
        )
        for p in row.get("pdq") or []
    )
    return Hashes(
        sha256=row["sha256"],
        md5=row["md5"],
        sha1=row["sha1"],
        cid=row["cid"],
        size=int(row["size"] or 0),
        media_type=row["media_type"] or "application/octet-stream",
        pdq=pdq,
        phash=row.get("phash"),
        dhash=row.get("dhash"),
        unhashable=Unhashable(row["unhashable"]) if row.get("unhashable") else None,
        unhashable_detail=row.get("unhashable_detail"),
        width=row.get("width"),
        height=row.get("height"),
        media_types=tuple(row.get("media_types") or ()),
        frames=row.get("frames"),
    )
