"""``LabelStore``: the labels log in Postgres (migration 009) — applying, negating, reading by sequence
and by URI pattern. No key here: rows are written unsigned and signed by the serving ``Labeler``.

Ordering: a subscriber that has read up to ``seq`` N asks for ``seq > N`` next. A sequence value is
taken when a row is inserted but becomes visible when its transaction commits, so two writers could
commit 11 before 10 and a reader would skip 10 for ever. Every writer therefore takes one transaction-level
advisory lock before inserting: rows commit in ``seq`` order (label writes are rare; the lock is cheap).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gate.labels.label import Label, now_cts

if TYPE_CHECKING:
    import asyncpg

    from gate.store.pool import Connection, Pool

# The advisory-lock key every writer of the labels log agrees on ("labels").
LOCK_KEY = 0x6C6162656C73
COLUMNS = "seq, src, uri, cid, val, neg, cts, exp, sig, signed_by"


@dataclass(frozen=True, slots=True)
class LabelRow:
    seq: int
    label: Label
    signed_by: str | None


def row_of(r: asyncpg.Record) -> LabelRow:
    sig = r["sig"]
    label = Label(
        src=r["src"], uri=r["uri"], val=r["val"], cts=r["cts"], cid=r["cid"], neg=r["neg"], exp=r["exp"],
        sig=bytes(sig) if sig is not None else None,
    )  # fmt: skip
    return LabelRow(r["seq"], label, r["signed_by"])


async def _lock(conn: Connection) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)


async def _current_neg(conn: Connection, src: str, uri: str, val: str) -> bool | None:
    """The label's state now: None (never labelled), True (negated) or False (applies)."""
    neg: bool | None = await conn.fetchval(
        "SELECT neg FROM labels WHERE uri = $1 AND val = $2 AND src = $3 AND cid IS NULL"
        " ORDER BY seq DESC LIMIT 1",
        uri,
        val,
        src,
    )
    return neg


async def _insert(conn: Connection, label: Label, decision_id: uuid.UUID | None) -> int:
    seq: int = await conn.fetchval(
        "INSERT INTO labels (src, uri, cid, val, neg, cts, exp, decision_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq",
        label.src,
        label.uri,
        label.cid,
        label.val,
        label.neg,
        label.cts,
        label.exp,
        decision_id,
    )
    return seq


async def apply_labels(
    conn: Connection, src: str, uri: str, vals: Sequence[str], decision_id: uuid.UUID | None
) -> list[int]:
    """Inside the caller's transaction: ``decision_id`` asks for each of ``vals`` on ``uri``. A label that
    already applies is not repeated (the decision is still remembered as one of its reasons)."""
    await _lock(conn)
    made: list[int] = []
    for val in dict.fromkeys(vals):
        if decision_id is not None:
            await conn.execute(
                "INSERT INTO label_reasons (uri, val, decision_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                uri,
                val,
                decision_id,
            )
        if await _current_neg(conn, src, uri, val) is not False:
            made.append(await _insert(conn, Label(src, uri, val, now_cts()), decision_id))
    return made


async def negate_labels(conn: Connection, src: str, uri: str, vals: Sequence[str]) -> list[int]:
    """Inside the caller's transaction: negate each of ``vals`` on ``uri`` that applies now."""
    await _lock(conn)
    made: list[int] = []
    for val in dict.fromkeys(vals):
        if await _current_neg(conn, src, uri, val) is False:
            made.append(await _insert(conn, Label(src, uri, val, now_cts(), neg=True), None))
    return made


async def negate_released(conn: Connection, decision_id: uuid.UUID) -> list[int]:
    """Inside the transaction that released ``decision_id`` (a reviewer's false positive): negate every
    label it asked for that no other unreleased decision still asks for."""
    pairs = await conn.fetch(
        "SELECT r.uri, r.val FROM label_reasons r WHERE r.decision_id = $1 AND NOT EXISTS ("
        " SELECT 1 FROM label_reasons o LEFT JOIN evidence e ON e.decision_id = o.decision_id"
        " WHERE o.uri = r.uri AND o.val = r.val AND o.decision_id <> $1"
        " AND e.state IS DISTINCT FROM 'released')",
        decision_id,
    )
    if not pairs:
        return []
    await _lock(conn)
    made: list[int] = []
    for pair in pairs:
        latest = await conn.fetchrow(
            "SELECT src, neg FROM labels WHERE uri = $1 AND val = $2 AND cid IS NULL ORDER BY seq DESC LIMIT 1",
            pair["uri"],
            pair["val"],
        )
        if latest is not None and not latest["neg"]:
            label = Label(latest["src"], pair["uri"], pair["val"], now_cts(), neg=True)
            made.append(await _insert(conn, label, decision_id))
    return made


@dataclass(frozen=True, slots=True)
class UriPatterns:
    """queryLabels' ``uriPatterns``: exact URIs, and prefixes (a pattern ending in ``*``; ``*`` = all)."""

    exact: tuple[str, ...]
    prefixes: tuple[str, ...]

    @property
    def everything(self) -> bool:
        return "" in self.prefixes


class LabelStore:
    def __init__(self, db: Pool) -> None:
        self.db = db

    async def apply(
        self, src: str, uri: str, vals: Sequence[str], decision_id: uuid.UUID | None
    ) -> list[int]:
        async with self.db.transaction() as conn:
            return await apply_labels(conn, src, uri, vals, decision_id)

    async def negate(self, src: str, uri: str, vals: Sequence[str]) -> list[int]:
        async with self.db.transaction() as conn:
            return await negate_labels(conn, src, uri, vals)

    async def head(self) -> int:
        """The highest sequence number written (0: none)."""
        seq: int = await self.db.fetchval("SELECT coalesce(max(seq), 0) FROM labels")
        return seq

    async def since(self, seq: int, limit: int) -> list[LabelRow]:
        """Every row after ``seq``, in order: the subscribeLabels stream."""
        rows = await self.db.fetch(
            f"SELECT {COLUMNS} FROM labels WHERE seq > $1 ORDER BY seq LIMIT $2",  # noqa: S608
            seq,
            limit,
        )
        return [row_of(r) for r in rows]

    async def query(
        self, patterns: UriPatterns, sources: Sequence[str], after: int, limit: int
    ) -> list[LabelRow]:
        """queryLabels: the current state of each label (its latest row, negations included, so a
        client learns that a label it holds was withdrawn) whose URI matches, in ``seq`` order."""
        rows = await self.db.fetch(
            f"SELECT {COLUMNS} FROM labels l WHERE l.seq > $1"  # noqa: S608
            " AND ($2 OR l.uri = ANY($3::text[]) OR EXISTS (SELECT 1 FROM unnest($4::text[]) p"
            " WHERE starts_with(l.uri, p)))"
            " AND (cardinality($5::text[]) = 0 OR l.src = ANY($5::text[]))"
            " AND NOT EXISTS (SELECT 1 FROM labels n WHERE n.uri = l.uri AND n.val = l.val"
            " AND n.src = l.src AND n.cid IS NOT DISTINCT FROM l.cid AND n.seq > l.seq)"
            " ORDER BY l.seq LIMIT $6",
            after,
            patterns.everything,
            list(patterns.exact),
            list(patterns.prefixes),
            list(sources),
            limit,
        )
        return [row_of(r) for r in rows]

    async def store_signatures(self, signed: Sequence[tuple[int, bytes]], signer: str) -> dict[int, bytes]:
        """Keep signatures made for unsigned (or otherwise-signed) rows; returns every row's signature as
        stored — another replica may have signed a row first, and its signature is the one kept."""
        seqs = [s for s, _ in signed]
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE labels l SET sig = v.sig, signed_by = $3 FROM unnest($1::bigint[], $2::bytea[])"
                " AS v(seq, sig) WHERE l.seq = v.seq AND (l.sig IS NULL OR l.signed_by IS DISTINCT FROM $3)",
                seqs,
                [sig for _, sig in signed],
                signer,
            )
            rows = await conn.fetch("SELECT seq, sig FROM labels WHERE seq = ANY($1::bigint[])", seqs)
        return {r["seq"]: bytes(r["sig"]) for r in rows}
