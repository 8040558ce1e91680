"""``Scanner``: every blob the PDS stores, judged by the gate's judge and recorded as a backfill decision.

One producer lists repos (``listRepos``: every account, active or not) and each repo's blobs
(``listBlobs``); ``concurrency`` workers read, judge, act and record them, across repo boundaries, paced
by ``blobs_per_second`` and ``bytes_per_second`` so the PDS keeps serving. A repo is marked done once
every blob listed in it is recorded. What is already recorded is never read again unless ``rescan``: a
repo finished at the rev it still has is not even listed, a changed one is listed only for blobs of
newer records (``listBlobs?since=``), and within a repo every recorded CID is skipped — which is also how
a killed scan resumes. Each repo listed is also read once whole (``getRepo``: records, no blobs) to name
the records that reference each blob; a repo that cannot be read so is scanned without them.

Bad input is a recorded outcome, never a crash and never a silent skip: a blob the PDS will not serve, a
repo it refuses, bytes that do not match their CID, a blob over the size limit — each is counted by kind
and kept (``scan_blobs`` per blob, ``scan_repos`` per repo) with what was said. Those that may pass
another time (the PDS or a matcher failing) do not count as scanned: the next scan tries them again.

Memory: the scan holds its blobs under GATE_MEMORY_BUDGET_BYTES, as the gate holds uploads. A worker
waits (it never fails) until its blob's whole peak (gate.proxy.budget.peak) fits, sized by the blob's
declared length before a byte is read; it holds nothing while it waits, so workers cannot hold each
other up. Its hasher therefore reserves nothing of its own (gate.scan.parts): the worker's copy is part
of the peak. Only a blob whose peak is over the whole budget is a problem (``too_large``), as no wait
could make it fit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from gate.blob_fetch import BlobSource, BlobUnavailable, PdsSync, Repo
from gate.judge import Context, Judge
from gate.proxy.budget import Admission, MemoryBudget, peak
from gate.record import DecisionRecord, new_decision_id
from gate.repo_records import blob_records
from gate.scan.act import ScanActor
from gate.scan.pace import Pace
from gate.scan.progress import Tally
from gate.scan.store import RETRIED, Outcome, RepoState, ScanStore
from gate.types import DecisionSource, Uploader

log = logging.getLogger("gate.scan")


def repo_uploader(did: str) -> Uploader:
    """Whose blob it is: the repo the PDS lists it in (its own word about its own data, not a claim)."""
    return Uploader(did, "repo", verified_how="repo")


@dataclass
class ScanOptions:
    concurrency: int = 4
    blobs_per_second: float = 0.0  # 0 = no limit
    bytes_per_second: float = 0.0
    rescan: bool = False
    only: frozenset[str] = frozenset()  # these DIDs only (empty: every repo)
    records: bool = True  # read each repo (getRepo) to name the records that reference each blob
    # A larger repo is scanned without naming records: decoded whole, a CAR takes several times its size
    # in memory (64 MiB holds some 100 000 records, far beyond most accounts).
    max_repo_bytes: int = 64 << 20


@dataclass
class _RepoRun:
    repo: Repo
    pending: int = 0
    listed: bool = False
    retry: bool = False  # some blob must be tried again: do not move the repo's rev forward
    records: dict[str, list[str]] = field(default_factory=dict)  # blob CID → at:// URIs referencing it
    finished: asyncio.Event = field(default_factory=asyncio.Event)


Item = tuple[_RepoRun, str]


class Scanner:
    def __init__(
        self,
        judge: Judge,
        sync: PdsSync,
        blobs: BlobSource,
        store: ScanStore,
        actor: ScanActor,
        tally: Tally,
        options: ScanOptions,
        notify: Callable[[DecisionRecord], None] = lambda record: None,
        *,
        budget: MemoryBudget,
    ) -> None:
        self.judge = judge
        self.budget = budget  # GATE_MEMORY_BUDGET_BYTES, this process's: every blob's peak is admitted
        self.sync = sync
        self.blobs = blobs
        self.store = store
        self.actor = actor
        self.tally = tally
        self.options = options
        self.notify = notify
        self._blob_pace = Pace(options.blobs_per_second)
        self._byte_pace = Pace(options.bytes_per_second)

    async def run(self) -> Tally:
        states = {} if self.options.rescan else await self.store.states()
        repos = [
            r async for r in self.sync.list_repos() if not self.options.only or r.did in self.options.only
        ]
        self.tally.repos_total = len(repos)
        queue: asyncio.Queue[Item | None] = asyncio.Queue(maxsize=self.options.concurrency * 4)
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(self.options.concurrency)]
        try:
            for repo in repos:
                await self._list(repo, states.get(repo.did), queue)
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await self.store.flush()  # what was judged before a stop is kept: the resume skips it
        return self.tally

    async def _list(self, repo: Repo, state: RepoState | None, queue: asyncio.Queue[Item | None]) -> None:
        if state is not None and state.state == "done" and state.since_rev == repo.rev:
            self.tally.repos_unchanged += 1
            return
        since = state.since_rev if state is not None else None
        run = _RepoRun(repo)
        await self.store.begin_repo(repo.did, repo.rev)
        try:
            known = set() if self.options.rescan else await self.store.done_cids(repo.did)
            if self.options.records:
                run.records = await self._records(repo.did)
            async for page in self.sync.list_blobs(repo.did, since):
                self.tally.blobs_listed += len(page)
                for cid in page:
                    if cid in known:
                        self.tally.blobs_known += 1
                        continue
                    run.pending += 1
                    await queue.put((run, cid))
        except BlobUnavailable as exc:
            # The repo as a whole (deactivated without the admin password, deleted meanwhile...).
            self.tally.problems[exc.kind] += 1
            self.tally.repos_failed += 1
            log.warning("scan: repo %s not readable: %s", repo.did, exc)
            await self.store.fail_repo(repo.did, str(exc))
            return
        run.listed = True
        await self._maybe_finish(run)

    async def _records(self, did: str) -> dict[str, list[str]]:
        try:
            car = await self.sync.repo_car(did, self.options.max_repo_bytes)
            await self._byte_pace.take(len(car))  # the PDS served it: it counts against --bytes-per-second
            return await asyncio.to_thread(blob_records, did, car)
        except BlobUnavailable as exc:
            if exc.kind == "repo_unavailable":
                raise  # the repo as a whole: listBlobs would say the same
            reason = str(exc)
        except ValueError as exc:  # not a CAR libipld reads, or no commit in it
            reason = f"unreadable CAR: {exc}"
        self.tally.repos_without_records += 1
        log.warning("scan: records of %s not read (blobs are judged without them): %s", did, reason)
        return {}

    async def _maybe_finish(self, run: _RepoRun) -> None:
        if run.listed and run.pending == 0 and not run.finished.is_set():
            run.finished.set()
            await self.store.finish_repo(run.repo.did, advance=not run.retry)
            self.tally.repos_done += 1

    async def _worker(self, queue: asyncio.Queue[Item | None]) -> None:
        while (item := await queue.get()) is not None:
            run, cid = item
            try:
                await self._one(run, cid)
            finally:
                run.pending -= 1
                await self._maybe_finish(run)

    async def _one(self, run: _RepoRun, cid: str) -> None:
        await self._blob_pace.take()
        held = Admission(self.budget)
        try:
            await self._judge_blob(run, cid, held)
        finally:
            held.release()

    async def _judge_blob(self, run: _RepoRun, cid: str, held: Admission) -> None:
        did = run.repo.did

        try:
            body = await self.blobs.get_blob(
                did, cid, held.blob(lambda why: BlobUnavailable("too_large", why))
            )
        except BlobUnavailable as exc:
            await self._problem(run, cid, exc.kind, exc.detail)
            return
        held.shrink_to(peak(len(body)))
        self.tally.blobs_read += 1
        self.tally.bytes_read += len(body)
        await self._byte_pace.take(len(body))
        context = Context(DecisionSource.BACKFILL)
        judged = await self.judge.judge(body, context)
        decision = judged.decision
        if decision.reason == "matcher_error":
            # Judged while a matcher failed: the verdict may change when it answers. Tried again next scan.
            await self._problem(run, cid, "matcher_error", "; ".join(decision.notes))
            return
        record = DecisionRecord(
            id=new_decision_id(),
            time=DecisionRecord.now(),
            source=DecisionSource.BACKFILL,
            client_ip=None,
            uploader=repo_uploader(did),
            declared_type=None,
            hashes=judged.hashes,
            decision=decision,
            verdict=decision.verdict,
            timings_ms=dict(context.timer.stages),
            cached=judged.cached,
            records=tuple(run.records.get(cid, ())),
        )

        async def read_again() -> bytes:
            return body

        actions = await self.actor.act(judged.policy, record, did, cid, read_again)
        if actions:
            record = replace(record, actions=actions)
        self.tally.verdicts[decision.verdict.value] += 1
        for a in actions:
            self.tally.actions[f"{a.action.value}:{a.result}"] += 1
        await self.store.add(Outcome(did, cid, record=record))
        self.notify(record)

    async def _problem(self, run: _RepoRun, cid: str, kind: str, detail: str) -> None:
        self.tally.problems[kind] += 1
        log.info("scan: blob %s of %s not judged: %s: %s", cid, run.repo.did, kind, detail)
        if kind in RETRIED:
            run.retry = True  # recorded with its reason, and tried again by the next scan
        await self.store.add(Outcome(run.repo.did, cid, problem=kind, detail=detail[:500]))
