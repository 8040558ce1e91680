"""``RetroHunt``: stored hashes re-judged when a bank gains entries.

A picture forwarded as clean today can be banked tomorrow. When a local bank reload adds hashes, only
the new entries are matched against every stored decision that forwarded a blob (``gate.scan.stored``):
exact hashes by lookup, PDQ by a multi-index join (``gate.scan.pdq_join``) at the widest distance a rule
of the current policy looks at. Each hit is judged again by the judge, from its stored hashes, under the
policy in force, recorded as a ``retro`` decision that names its original (``origin``) and the added bank
entry (in its notes and matches), and acted on per ``[scan]`` like a scanned blob — the bytes for review
fetched from the PDS. A decision already re-judged (a ``retro`` decision names it) is not re-judged again.
Hunts run one at a time across every process on the gate's Postgres (``gate.scan.retro_lock``), and
``record`` must have stored a hit's row when it returns: the next hunt, maybe another process's, reads
those rows to know what is already re-judged.

Memory: judging needs no bytes (the stored hashes are judged), but a review's evidence does: the blob
is fetched from the PDS and sealed. That fetch holds its peak (gate.proxy.budget.peak: the body, the
ciphertext and asyncpg's copy) under the process's GATE_MEMORY_BUDGET_BYTES through an ``Admission``, as
a scan's blob: it waits, holding nothing, until the peak fits; a peak over the whole budget is a
``too_large`` fetch, so the review is recorded ``failed`` with why, as any other blob it cannot read.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gate import metrics
from gate.blob_fetch import BlobSource, BlobUnavailable
from gate.judge import Context, Judge, Judgement
from gate.matching.bank_columns import Entry
from gate.proxy.budget import Admission, MemoryBudget, peak
from gate.quarantine.withheld import WithheldBlobs
from gate.record import DecisionRecord, new_decision_id
from gate.scan.act import ScanActor
from gate.scan.bank_diff import BankDiff
from gate.scan.pace import Pace
from gate.scan.pdq_join import NewHashes
from gate.scan.retro_lock import one_hunt
from gate.scan.stored import (
    STORED,
    PdqBlock,
    decision_rows,
    each_decision,
    each_pdq_block,
    row_hashes,
    stored_exact,
)
from gate.signals import SignalType
from gate.store.pool import Pool
from gate.store.query import row_to_json
from gate.types import DecisionSource, ScanAction, Uploader, Verdict

log = logging.getLogger("gate.scan")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_start(days: int) -> datetime:
    """The start of a window of ``days`` days back from now; 0: the whole log."""
    return EPOCH if days == 0 else datetime.now(UTC) - timedelta(days=days)


@dataclass(frozen=True, slots=True)
class Hit:
    entry: Entry  # (bank, file, line, label) of the added row
    signal: SignalType
    distance: int | None


@dataclass
class RetroTally:
    hits: int = 0  # stored decisions an added entry matched
    judged: int = 0
    already: int = 0  # re-judged before (an earlier retro decision names it)
    # Why an HMA pass ended before the window's end (a lookup failed); None: it got to the end.
    stopped: str | None = None
    verdicts: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, object]:
        return {
            "hits": self.hits,
            "judged": self.judged,
            "already_rejudged": self.already,
            "stopped": self.stopped,
            "verdicts": dict(sorted(self.verdicts.items())),
            "actions": dict(sorted(self.actions.items())),
        }


Record = Callable[[DecisionRecord], Awaitable[None]]


class RetroHunt:
    def __init__(
        self,
        db: Pool,
        judge: Judge,
        actor: ScanActor,
        record: Record,
        blobs: BlobSource | None = None,
        withheld: WithheldBlobs | None = None,
        *,
        budget: MemoryBudget,
    ) -> None:
        self.budget = budget  # the process's: a review's fetched blob is held under it (serve's is shared)
        self.db = db
        self.judge = judge
        self.actor = actor
        self.record = record
        self.blobs = blobs
        self.withheld = withheld

    async def run(self, diff: BankDiff, since: datetime) -> RetroTally:
        """Match ``diff`` against what is stored since ``since``; judge, record and act on every hit."""
        return await counted("bank", self._run(diff, since))

    async def _run(self, diff: BankDiff, since: datetime) -> RetroTally:
        async with one_hunt(self.db, "retro-hunt"):
            policy = self.judge.policy.plan
            diff = diff.without(policy.policy.allowlist_banks)
            hits = await self.find(diff, since, policy.local.max_distance.get(SignalType.PDQ))
            tally = RetroTally(hits=len(hits))
            if hits:
                await self.rejudge(hits, tally)
            return tally

    async def find(self, diff: BankDiff, since: datetime, max_distance: int | None) -> dict[str, list[Hit]]:
        """Stored decision id → the added entries that match it. PDQ only when a rule looks at local PDQ
        (``max_distance`` None: none does)."""
        hits: dict[str, list[Hit]] = {}
        for signal, values in diff.exact.items():
            if values:
                for decision_id, value in await stored_exact(self.db, signal, list(values), since):
                    hits.setdefault(decision_id, []).extend(Hit(e, signal, None) for e in values[value])
        if diff.pdq_entries and max_distance is not None:
            index = NewHashes(diff.pdq_words)

            async def handle(block: PdqBlock) -> None:
                new, stored, dist = await asyncio.to_thread(index.join, block.words, max_distance)
                for n, s, d in zip(new.tolist(), stored.tolist(), dist.tolist(), strict=True):
                    found = hits.setdefault(block.decision_id(s), [])
                    found.append(Hit(diff.pdq_entries[n], SignalType.PDQ, d))

            await each_pdq_block(self.db, since, handle)
        return hits

    async def rejudge(self, hits: dict[str, list[Hit]], tally: RetroTally) -> None:
        ids = list(hits)
        done = {
            r["origin"].hex
            for r in await self.db.fetch(
                "SELECT DISTINCT origin FROM decisions WHERE source = 'retro' AND origin = ANY($1::uuid[])",
                ids,
            )
        }
        for start in range(0, len(ids), 500):
            for row in await decision_rows(self.db, [i for i in ids[start : start + 500] if i not in done]):
                added = tuple(f"retro: {h.entry[0]} {h.entry[1]}:{h.entry[2]} added" for h in hits[row["id"]])
                context = Context(DecisionSource.RETRO)
                await self._one(row, await self.judge.judge(row_hashes(row), context), context, added, tally)
        tally.already = len(done)

    async def hma_pass(self, since: datetime, rate: float, note: str) -> RetroTally:
        """HMA's index was rebuilt: every stored PDQ hash since ``since`` looked up again, at most
        ``rate`` lookups a second so HMA is not flooded; a stored decision a rule now blocks is a hit."""
        async with one_hunt(self.db, "retro-hunt (HMA)"):
            return await self.hma_pass_held(since, rate, note)

    async def hma_pass_held(self, since: datetime, rate: float, note: str) -> RetroTally:
        """``hma_pass`` for a caller that holds ``one_hunt`` already. It stops at the first judgement a
        matcher failed (``tally.stopped`` says why): HMA failing, the rest of the window would be
        judged without it (no hit, silently), and a pass that did not look everything up covers no
        index change (``gate.scan.retro_hma``)."""
        return await counted("hma", self._hma_pass(since, rate, note))

    async def _hma_pass(self, since: datetime, rate: float, note: str) -> RetroTally:
        pace = Pace(rate)
        tally = RetroTally()
        where = f"{STORED} AND pdq <> '[]'::jsonb"
        async for raw in each_decision(self.db, where, since, 200):
            row = row_to_json(raw)
            hashes = row_hashes(row)
            await pace.take(len(SignalType.PDQ.facts.values(hashes)))
            context = Context(DecisionSource.RETRO)
            judged = await self.judge.judge(hashes, context)
            if judged.failed:
                errors = "; ".join(n for n in judged.decision.notes if n.startswith("matcher_error"))
                tally.stopped = f"{errors or 'a matcher failed'} (decision {raw['id'].hex})"
                return tally
            if judged.decision.verdict is Verdict.FORWARD or judged.decision.reason != "match":
                continue  # nothing new
            tally.hits += 1
            if await self.db.fetchval(
                "SELECT 1 FROM decisions WHERE source = 'retro' AND origin = $1", raw["id"]
            ):
                tally.already += 1
                continue
            await self._one(row, judged, context, (note,), tally)
        return tally

    async def _one(
        self,
        row: dict[str, Any],
        judged: Judgement,
        context: Context,
        notes: tuple[str, ...],
        tally: RetroTally,
    ) -> None:
        hashes = judged.hashes
        decision = replace(judged.decision, notes=(*judged.decision.notes, *notes))
        did, cid = str(row["did"]), hashes.cid
        record = DecisionRecord(
            id=new_decision_id(),
            time=DecisionRecord.now(),
            source=DecisionSource.RETRO,
            client_ip=None,
            uploader=Uploader(
                did,
                str(row.get("did_method") or "unknown"),
                verified_how=_text(row.get("verified_how")),
                claimed_did=_text(row.get("claimed_did")),
            ),
            declared_type=_text(row.get("declared_type")),
            hashes=hashes,
            decision=decision,
            verdict=decision.verdict,
            timings_ms=dict(context.timer.stages),
            origin=str(row["id"]),
            records=tuple(str(r) for r in row.get("records") or ()),  # what the original knew
        )
        blobs = self.blobs
        held = Admission(self.budget)  # held from the fetch until the evidence is written (``act``)

        async def body() -> bytes:
            if blobs is None:
                raise RuntimeError("no way to fetch the blob from the PDS")
            data = await blobs.get_blob(did, cid, held.blob(lambda why: BlobUnavailable("too_large", why)))
            held.shrink_to(peak(len(data)))
            return data

        try:
            actions = await self.actor.act(judged.policy, record, did, cid, body)
        finally:
            held.release()
        if self.withheld is not None and any(
            a.action is ScanAction.WITHHOLD and a.result == "done" for a in actions
        ):
            self.withheld.add(hashes.sha256)  # this process at once; the others from the row
        record = replace(record, actions=actions)
        await self.record(record)
        tally.judged += 1
        tally.verdicts[decision.verdict.value] += 1
        for a in actions:
            tally.actions[f"{a.action.value}:{a.result}"] += 1
        metrics.RETRO_HITS.labels(decision.verdict.value).inc()
        log.warning(
            "retro-hunt: decision %s (%s) re-judged %s by rule %s",
            row["id"],
            cid,
            decision.verdict.value,
            decision.rule,
        )


async def counted(kind: str, hunt: Awaitable[RetroTally]) -> RetroTally:
    """``hunt`` awaited, its outcome counted in ``upload_gate_retro_runs_total`` (the one place it is):
    done, stopped (its tally says why) or failed (it raised; the caller logs it). A hunt cancelled because
    the process stops is not counted: it did not fail, and counting it would alert on every restart."""
    try:
        tally = await hunt
    except Exception:
        metrics.RETRO_RUNS.labels(kind, "failed").inc()
        raise
    metrics.RETRO_RUNS.labels(kind, "done" if tally.stopped is None else "stopped").inc()
    return tally


def _text(value: object) -> str | None:
    return None if value is None else str(value)
