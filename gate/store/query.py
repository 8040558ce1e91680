"""The read side of the decision log: filters for ``upload-gate decisions`` and the ``stats`` report."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gate.store.pool import Connection

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_when(raw: str, now: datetime | None = None) -> datetime:
    """``30m``, ``2h``, ``7d`` (that long ago) or an ISO-8601 time (UTC when no zone is given)."""
    now = now or datetime.now(UTC)
    text = raw.strip()
    m = _DURATION.match(text)
    if m:
        return now - timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{raw!r}: expected a duration like 30m, 2h, 7d or an ISO-8601 time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    verdict: str | None = None
    source: str | None = None  # which path judged the bytes (gate.types.DecisionSource)
    did: str | None = None
    cid: str | None = None
    sha256: str | None = None
    rule: str | None = None
    shadow: bool = False  # only decisions where a shadow rule fired
    limit: int = 50

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []

        def add(sql: str, value: Any) -> None:
            args.append(value)
            clauses.append(sql.format(f"${len(args)}"))

        if self.since:
            add("time >= {}", self.since)
        if self.until:
            add("time < {}", self.until)
        if self.verdict:
            add("verdict = {}", self.verdict)
        if self.source:
            add("source = {}", self.source)
        if self.did:
            add("did = {}", self.did)
        if self.cid:
            add("cid = {}", self.cid)
        if self.sha256:
            add("sha256 = {}", self.sha256.lower())
        if self.rule:
            add("rule = {}", self.rule)
        if self.shadow:
            clauses.append("shadow_rule IS NOT NULL")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


async def fetch_decisions(conn: Connection, filters: Filters) -> list[dict[str, Any]]:
    """Matching rows, newest first, as JSON-ready dicts (id as 32 hex chars, like ``DecisionRecord.id``)."""
    where, args = filters.where()
    args.append(filters.limit)
    sql = f"SELECT * FROM decisions{where} ORDER BY time DESC, id DESC LIMIT ${len(args)}"  # noqa: S608
    return [row_to_json(r) for r in await conn.fetch(sql, *args)]


def row_to_json(row: Any) -> dict[str, Any]:
    return {key: _json_value(key, value) for key, value in dict(row).items()}


def _json_value(key: str, value: Any) -> Any:
    if key in ("id", "origin") and value is not None:  # a retro decision's original: the same spelling
        return value.hex
    if isinstance(value, datetime):
        return value.isoformat()
    if key == "client_ip" and value is not None:
        return str(value)
    if isinstance(value, str) and key in JSONB_COLUMNS:
        return json.loads(value)
    return value


JSONB_COLUMNS = frozenset(
    {
        "pdq",
        "matches",
        "all_matches",
        "shadow_matches",
        "notes",
        "timings_ms",
        "media_types",
        "actions",
        "records",
    }
)

_BLOCKED = "verdict IN ('reject', 'quarantine')"


# A judged upload whose caller the PDS never accepted (the PDS unreachable when asked, or a row written
# before verification existed) names nobody and proves nothing about an account: by default the
# statistics leave such rows out. Rows without a verdict (413, 415, ...) never name anyone and stay in.
_ATTRIBUTED = "(did_verified OR verdict IS NULL)"


async def fetch_stats(
    conn: Connection, since: datetime, until: datetime, *, include_unverified: bool = False
) -> dict[str, Any]:
    """Verdict counts, and per rule / per bank how much was blocked, over ``[since, until)``; judged
    uploads of callers the PDS never accepted only with ``include_unverified``."""
    window = "time >= $1 AND time < $2"
    unverified = await conn.fetchval(
        f"SELECT count(*) FROM decisions WHERE {window} AND NOT {_ATTRIBUTED}",  # noqa: S608
        since,
        until,
    )
    if not include_unverified:
        window += f" AND {_ATTRIBUTED}"
    total = await conn.fetchval(f"SELECT count(*) FROM decisions WHERE {window}", since, until)  # noqa: S608
    verdicts = await conn.fetch(
        f"SELECT coalesce(verdict, 'none') AS verdict, count(*) AS n FROM decisions "  # noqa: S608
        f"WHERE {window} GROUP BY 1 ORDER BY 2 DESC, 1",
        since,
        until,
    )
    rules = await conn.fetch(
        f"SELECT coalesce(rule, '-') AS rule, count(*) AS n, count(*) FILTER (WHERE {_BLOCKED}) AS blocked "  # noqa: S608
        f"FROM decisions WHERE {window} GROUP BY 1 ORDER BY 2 DESC, 1",
        since,
        until,
    )
    banks = await conn.fetch(
        "SELECT m->>'source' AS source, m->>'bank' AS bank, count(DISTINCT d.id) AS n, "  # noqa: S608
        f"count(DISTINCT d.id) FILTER (WHERE {_BLOCKED}) AS blocked "
        f"FROM decisions d, jsonb_array_elements(d.all_matches) m WHERE {window} "
        "GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2",
        since,
        until,
    )
    shadow = await conn.fetch(
        "SELECT shadow_rule AS rule, shadow_verdict AS verdict, count(*) AS n, "  # noqa: S608
        f"count(*) FILTER (WHERE shadow_only) AS shadow_only FROM decisions WHERE {window} "
        "AND shadow_rule IS NOT NULL GROUP BY 1, 2 ORDER BY 3 DESC, 1",
        since,
        until,
    )
    unscanned = await conn.fetchval(
        f"SELECT count(*) FROM decisions WHERE {window} AND verdict = 'forward' AND full_scan IS FALSE",  # noqa: S608
        since,
        until,
    )

    def rate(part: int, whole: int) -> float:
        return round(part / whole, 4) if whole else 0.0

    blocked = sum(r["n"] for r in verdicts if r["verdict"] in ("reject", "quarantine"))
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "total": total,
        "blocked": blocked,
        "block_rate": rate(blocked, total),
        "unscanned_forwards": unscanned,
        # judged uploads of callers the PDS never accepted; counted above only with include_unverified
        "unverified": unverified,
        "include_unverified": include_unverified,
        "verdicts": {r["verdict"]: r["n"] for r in verdicts},
        # share: this rule's blocks among all uploads in the window
        "rules": [
            {
                "rule": r["rule"],
                "decisions": r["n"],
                "blocked": r["blocked"],
                "share": rate(r["blocked"], total),
            }
            for r in rules
        ],
        # block_rate: of the uploads that matched this bank, how many were blocked
        "banks": [
            {
                "source": r["source"],
                "bank": r["bank"],
                "matched": r["n"],
                "blocked": r["blocked"],
                "block_rate": rate(r["blocked"], r["n"]),
            }
            for r in banks
        ],
        "shadow": [
            {"rule": r["rule"], "verdict": r["verdict"], "hits": r["n"], "shadow_only": r["shadow_only"]}
            for r in shadow
        ],
    }
