"""How fast does ``upload-gate scan`` judge stored blobs, against hashing the same bytes alone?

Run: python -m bench.scan [ROUNDS] (default 3), or as the ``scan`` section of ``python -m bench [--quick]``.
Everything is measured in this run:

- The real PDS of the end-to-end suite (``@atproto/pds`` from npm, ``tests/e2e/pds_server.py``) holds 56
  distinct photographs (7 photos × 256 px and 1024 px × 4 JPEG qualities; ``--quick``: 2 photos, 16)
  posted by 4 accounts.
- ``scan``: the ``Scanner`` as ``upload-gate scan --rescan --concurrency 4`` runs it — listRepos,
  listBlobs, getBlob over HTTP, the judge (bundled policy and banks), the decision rows and scan
  progress written to an embedded Postgres — with the verdict cache off, so every blob is hashed.
- ``hash``: the same 56 bodies through the same ``Hasher`` (same workers, 4 at a time), nothing else.
Rounds alternate (scan, hash, scan, hash…) so load from elsewhere hits both; printed: blobs/s of each
(median of the rounds) and scan / hash.
"""

from __future__ import annotations

import asyncio
import base64
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import corpus
from bench.report import Report
from gate.blob_fetch import PdsSync
from gate.proxy.budget import MemoryBudget
from gate.scan.act import ScanActor
from gate.scan.parts import open_parts
from gate.scan.progress import Tally
from gate.scan.scanner import Scanner, ScanOptions
from gate.scan.store import ScanStore
from gate.settings import Settings
from tests.e2e import pds_server
from tests.e2e.endpoints import Endpoint, new_user

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 4


def bodies(n_photos: int | None = None) -> list[bytes]:
    out = []
    for name, _ in corpus.photos(n_photos):
        for size in ("256px", "1024px"):
            img = corpus._resized(name, size, None)
            for quality in (80, 85, 90, 95):
                buffer = io.BytesIO()
                img.convert("RGB").save(buffer, "JPEG", quality=quality)
                out.append(buffer.getvalue())
    return out


def run(report: Report, quick: bool) -> None:
    """The ``scan`` section of ``python -m bench``."""
    photos = bodies(2 if quick else None)
    scan_rates, hash_rates = asyncio.run(_measure_on_a_pds(photos, 2 if quick else 3))
    scan, hashed = statistics.median(scan_rates), statistics.median(hash_rates)
    table = report.table(
        "Backfill: upload-gate scan against hashing alone (same run)",
        ["stored blobs", "scan blobs/s", "hashing alone blobs/s", "scan / hash", "rounds"],
        note=f"The Scanner as `upload-gate scan --rescan --concurrency {CONCURRENCY}` runs it against the real "
        "PDS (listRepos, getRepo, listBlobs, getBlob over HTTP, the judge, decision rows and progress in "
        "Postgres), verdict cache off; hashing alone: the same bodies through the same Hasher, "
        f"{CONCURRENCY} at a time. Rounds alternate; medians.",
    )
    table.add(
        **{
            "stored blobs": len(photos),
            "scan blobs/s": round(scan, 1),
            "hashing alone blobs/s": round(hashed, 1),
            "scan / hash": round(scan / hashed, 2),
            "rounds": len(scan_rates),
        }
    )


async def main(rounds: int) -> None:
    photos = bodies()
    scan_rates, hash_rates = await _measure_on_a_pds(photos, rounds)
    scan, hashed = statistics.median(scan_rates), statistics.median(hash_rates)
    print(
        f"scan of {len(photos)} stored blobs (real PDS, getBlob, judge, Postgres), {CONCURRENCY} at a time:"
    )
    print(
        f"  scan: {scan:.1f} blobs/s   hashing alone: {hashed:.1f} blobs/s   scan / hash: {scan / hashed:.2f}"
    )
    print(f"  rounds: scan {[round(r, 1) for r in scan_rates]}, hash {[round(r, 1) for r in hash_rates]}")


async def _measure_on_a_pds(photos: list[bytes], rounds: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as work:
        pds = pds_server.start(Path(work))
        try:
            users = [new_user(Endpoint("pds", pds.url, True)) for _ in range(4)]
            for i, body in enumerate(photos):
                users[i % 4].post_image(body, text=f"bench {i}")
            for user in users:
                user.client.request.close()
            settings = Settings.from_env(
                {
                    "GATE_UPSTREAM": pds.url,
                    "GATE_POLICY": str(ROOT / "config" / "policy.toml"),
                    "GATE_BANKS_DIR": str(ROOT / "config" / "banks"),
                    "GATE_DATA_DIR": str(Path(work) / "var"),
                    "GATE_EVIDENCE_KEY": base64.b64encode(bytes(32)).decode(),
                    "GATE_PDS_ADMIN_PASSWORD": pds.admin_password,
                    "GATE_VERDICT_CACHE_SIZE": "0",
                    "GATE_HASH_WORKERS": "2",
                }
            )
            return await measure(settings, {u.did for u in users}, photos, rounds)
        finally:
            pds.proc.stop()


async def measure(
    settings: Settings, dids: set[str], photos: list[bytes], rounds: int
) -> tuple[list[float], list[float]]:
    scan_rates: list[float] = []
    hash_rates: list[float] = []
    async with open_parts(settings) as parts:
        hasher, options = parts.judge.hasher, parts.policy.plan.hashing
        limit = asyncio.Semaphore(CONCURRENCY)

        async def hash_one(body: bytes) -> None:
            async with limit:
                await hasher.hash(body, options)

        async with PdsSync(
            settings.upstream, admin_password=settings.pds_admin_password, max_bytes=10**8
        ) as sync:
            for _ in range(rounds):
                tally = Tally()
                scanner = Scanner(
                    parts.judge, sync, sync, ScanStore(parts.pool), ScanActor(None, None, "bench"), tally,
                    ScanOptions(concurrency=CONCURRENCY, rescan=True, only=frozenset(dids)),
                    budget=MemoryBudget(settings.memory_budget_bytes),
                )  # fmt: skip
                started = time.perf_counter()
                await scanner.run()
                assert tally.blobs_read == len(photos) and not tally.problems, tally.summary()
                scan_rates.append(len(photos) / (time.perf_counter() - started))
                started = time.perf_counter()
                await asyncio.gather(*(hash_one(b) for b in photos))
                hash_rates.append(len(photos) / (time.perf_counter() - started))
    return scan_rates, hash_rates


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
