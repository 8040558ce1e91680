"""Plain-text views of the decision log for a terminal."""

from __future__ import annotations

from typing import Any

TABLE_COLUMNS = (
    "time",
    "id",
    "source",
    "verdict",
    "rule",
    "shadow",
    "did",
    "verified",
    "media_type",
    "size",
    "cid",
)


def _cell(row: dict[str, Any], column: str) -> str:
    if column == "time":
        return str(row["time"])[:19].replace("T", " ")
    if column == "verified":
        # How the DID was verified ("pds"); a row names a DID only once the PDS accepted the caller.
        return str(row.get("verified_how") or "-")
    if column == "shadow":
        rule = row.get("shadow_rule")
        return f"{row['shadow_verdict']}:{rule}" if rule else "-"
    if column == "media_type":
        # Every type the bytes satisfy (a JPEG that also sniffs as MP4: image/jpeg+video/mp4), and how
        # many pictures were hashed when more than one.
        types = "+".join(row.get("media_types") or []) or str(row.get("media_type") or "-")
        frames = row.get("frames")
        return f"{types} ({frames} frames)" if isinstance(frames, int) and frames > 1 else types
    value = row.get(column)
    return "-" if value is None else str(value)


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines) + "\n"


def decisions_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no decisions match\n"
    return table(TABLE_COLUMNS, [tuple(_cell(r, c) for c in TABLE_COLUMNS) for r in rows])


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def stats_text(stats: dict[str, Any]) -> str:
    out = [
        f"window   {stats['since']} .. {stats['until']}",
        f"uploads  {stats['total']}   blocked {stats['blocked']} ({_pct(stats['block_rate'])})"
        f"   forwarded without a full scan {stats['unscanned_forwards']}",
        (
            f"judged uploads of callers the PDS never accepted: {stats['unverified']}"
            + ("" if stats["include_unverified"] else " (not counted above; --include-unverified)")
        ),
        "",
        table(("verdict", "count"), [(v, str(n)) for v, n in stats["verdicts"].items()]),
        table(
            ("rule", "decisions", "blocked", "share of uploads"),
            [(r["rule"], str(r["decisions"]), str(r["blocked"]), _pct(r["share"])) for r in stats["rules"]],
        ),
        table(
            ("source", "bank", "matched", "blocked", "block rate"),
            [
                (b["source"], b["bank"], str(b["matched"]), str(b["blocked"]), _pct(b["block_rate"]))
                for b in stats["banks"]
            ],
        ),
    ]
    if stats["shadow"]:
        out.append(
            table(
                ("shadow rule", "would", "hits", "more severe"),
                [(s["rule"], s["verdict"], str(s["hits"]), str(s["shadow_only"])) for s in stats["shadow"]],
            )
        )
    return "\n".join(out)
