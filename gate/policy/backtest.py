"""Back-testing a policy against the decision log: what would change if ``NEW.toml`` were in force.

Every decision of the window that reached a verdict is judged again from its stored hashes under the new
policy: local banks re-matched now (the files in the banks directory, the new policy's distances), the
reviewed allowlist as it stands, HMA's matches as they were recorded (HMA matches within 31 bits whatever
a rule says, so the record holds every HMA match a rule could select; HMA is not asked again). Pure
``evaluate`` does the rest. Nothing is written: this reads the log and prints.

Reported: how many decisions would flip, from which verdict to which, grouped by the rule and bank that
would decide (for a flip to forward: the rule and bank that decided before), each group with examples
(decision id, CID).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gate.matching.local import LocalBanks
from gate.policy.evaluate import evaluate
from gate.policy.model import Policy
from gate.policy.plan import compile_plan
from gate.quarantine.allowlist import Allowlist
from gate.scan.stored import each_decision, row_hashes
from gate.signals import MatchSource, SignalType
from gate.store.pool import Pool
from gate.store.query import row_to_json
from gate.types import Decision, Match, MatchResult, Variant

PAGE = 1000
# Decisions judged on some path (a verdict and hashes); retro decisions re-state an earlier one.
_WINDOW = "verdict IS NOT NULL AND sha256 IS NOT NULL AND source <> 'retro' AND time >= $1"


@dataclass
class Flip:
    count: int = 0
    examples: list[dict[str, str | None]] = field(default_factory=list)


@dataclass
class BackTest:
    policy: str
    since: str
    examples: int = 5
    judged: int = 0
    unchanged: int = 0
    transitions: Counter[str] = field(default_factory=Counter)  # "forward → reject"
    # (old verdict, new verdict, rule, bank) → flips
    groups: dict[tuple[str, str, str, str], Flip] = field(default_factory=lambda: defaultdict(Flip))

    def add(self, row: dict[str, Any], new: Decision) -> None:
        self.judged += 1
        old = str(row["verdict"])
        if old == new.verdict.value:
            self.unchanged += 1
            return
        self.transitions[f"{old} → {new.verdict.value}"] += 1
        if new.verdict.value == "forward":  # what stops blocking it: the rule and bank that blocked
            rule, banks = (
                str(row["rule"]),
                sorted({str(m["bank"]) for m in row.get("matches") or []}) or ["-"],
            )
        else:
            rule, banks = new.rule, sorted({m.bank for m in new.matches}) or ["-"]
        for bank in banks:
            flip = self.groups[(old, new.verdict.value, rule, bank)]
            flip.count += 1
            if len(flip.examples) < self.examples:
                flip.examples.append({"id": row["id"], "cid": row.get("cid"), "source": row.get("source")})

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "since": self.since,
            "judged": self.judged,
            "unchanged": self.unchanged,
            "changed": self.judged - self.unchanged,
            "transitions": dict(sorted(self.transitions.items())),
            "flips": [
                {"from": o, "to": n, "rule": r, "bank": b, "count": f.count, "examples": f.examples}
                for (o, n, r, b), f in sorted(self.groups.items(), key=lambda kv: (-kv[1].count, kv[0]))
            ],
        }

    def text(self) -> str:
        lines = [
            f"back-test of policy {self.policy} against {self.judged} decisions since {self.since}"
            " (local banks re-matched now, HMA matches as recorded)",
            f"would change: {self.judged - self.unchanged}   unchanged: {self.unchanged}",
        ]
        for transition, count in sorted(self.transitions.items()):
            lines.append(f"  {transition}: {count}")
            old, new = transition.split(" → ")
            for (o, n, rule, bank), flip in sorted(self.groups.items(), key=lambda kv: -kv[1].count):
                if (o, n) == (old, new):
                    shown = ", ".join(f"{e['id']} {e['cid']}" for e in flip.examples)
                    lines.append(f"    rule {rule}, bank {bank}: {flip.count}   e.g. {shown}")
        return "\n".join(lines) + "\n"


def recorded_hma(row: dict[str, Any]) -> tuple[Match, ...]:
    """The HMA matches a decision recorded, as ``Match`` values again."""
    out = []
    for m in row.get("all_matches") or []:
        if m.get("source") != MatchSource.HMA:
            continue
        variant = m.get("variant")
        out.append(
            Match(
                MatchSource.HMA,
                str(m["bank"]),
                SignalType(m["signal"]),
                m.get("distance"),
                m.get("content_id"),
                m.get("label"),
                m.get("query_hash"),
                m.get("frame"),
                Variant(variant) if variant else None,
            )
        )
    return tuple(out)


async def back_test(
    db: Pool, policy: Policy, banks: LocalBanks, since: datetime, *, examples: int = 5
) -> BackTest:
    plan = compile_plan(policy)
    allowlist = Allowlist(db)
    await allowlist.refresh()
    report = BackTest(policy.version, since.isoformat(), examples)
    async for raw in each_decision(db, _WINDOW, since, PAGE):
        row = row_to_json(raw)
        hashes = row_hashes(row)
        local = await banks.match(hashes, plan)
        allowed = await allowlist.match(hashes, plan)
        matches = local.matches + allowed.matches + recorded_hma(row)
        report.add(row, evaluate(policy, hashes, MatchResult(matches, local.failures)))
    return report
