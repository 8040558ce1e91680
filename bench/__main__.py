"""``python -m bench [--quick] [--only SECTION …] [--out DIR]``: the whole benchmark suite.

Sections: ``hashing`` (cost per upload vs full-resolution PDQ, fast-path fidelity, and what animations,
EXIF orientation, multi-format bytes and HMA's own hash of CMYK and palette files add), ``judge``
(repeats of the same bytes), ``hma`` (an upload's lookups vs one; a burst against one HMA worker),
``matching`` (local banks at 10k / 100k / 1M / 10M hashes; NCMEC-scale bank files: 10M PDQ and 50M
MD5 + SHA-1 rows loaded, queried and reloaded), ``gate`` (end to end, passthrough, memory, 1 → 2
workers), ``memory`` (only the memory part of ``gate``: peak RSS of the gate and its hashing workers
under 64 concurrent 12 MP uploads and 8 concurrent 100 MB ones), ``passthrough`` (that table alone: the
gate, nginx, the default fronts and a bare aiohttp app in front of one upstream), ``scale`` (two
replicas on one shared Postgres behind nginx vs one, one decision log across both, and the sizing
table: uploads/s per core by format, memory per concurrent upload, Postgres writes per upload), ``scan`` (``upload-gate scan`` on the real PDS against hashing alone), ``retro`` (a retro-hunt
of 10M stored decisions against 100k new bank hashes, time and memory), ``firehose`` (``upload-gate
watch`` on a generated firehose replayed at full speed vs pure hashing), ``decision_log`` (1,000
cached-verdict uploads/s offered open loop, the decision log against a blackhole sink in alternating
blocks: latency ratios, rows stored against uploads answered).
Writes ``results.md`` and ``results.json`` to ``--out`` (default ``bench/out``) and prints the table;
``--docs`` also writes the run's figures into README.md and docs/performance.md (bench/docs.py).
``--quick`` runs everything on fewer photos and requests (a CI smoke run of a couple of minutes; the
retro-hunt on 200k decisions × 10k hashes).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench import (
    as_hma,
    bank_scale,
    corpus,
    decision_log,
    docs,
    endtoend,
    firehose,
    hashing,
    hma_load,
    matching,
    media,
    passthrough,
    repeat,
    retro,
    scale,
    scan,
)
from bench.report import Report

SECTIONS = (
    "hashing",
    "judge",
    "hma",
    "matching",
    "gate",
    "memory",
    "passthrough",
    "scale",
    "scan",
    "retro",
    "firehose",
    "decision_log",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer photos and requests (CI smoke run)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument(
        "--docs",
        action="store_true",
        help="write the run's figures into README.md and docs/performance.md (needs the scale section; "
        "the whole results block only from a run of every section)",
    )
    args = parser.parse_args(argv)
    if args.docs and "scale" not in args.only:
        parser.error("--docs needs the scale section (the sizing table)")

    report = Report(quick=args.quick)
    started = time.monotonic()
    n_photos = 2 if args.quick else None
    if "hashing" in args.only:
        _say("hashing: building the corpus and timing every size and format")
        sizes = ("256px", "1024px", "12MP") if args.quick else tuple(corpus.SIZES)
        hashing.run(report, corpus.corpus(n_photos, sizes), rounds=3 if args.quick else 9)
        _say("hashing: animations, orientation, polyglots")
        media.run(report, rounds=2 if args.quick else 5)
        _say("hashing: HMA's own hash of CMYK and palette files")
        as_hma.run(report, rounds=3 if args.quick else 9)
    if "judge" in args.only:
        _say("judge: repeats of the same bytes")
        repeat.run(report, args.quick)
    if "hma" in args.only:
        _say("hma: one upload's lookups, and a burst beyond one HMA worker's pace")
        hma_load.run(report, args.quick)
    if "matching" in args.only:
        _say("matching: local banks")
        # 10M hashes only in the full run: quick mode is CI's smoke test (bank_scale's is small too).
        sizes_n = [10_000, 100_000, 1_000_000] if args.quick else [10_000, 100_000, 1_000_000, 10_000_000]
        matching.run(report, sizes_n, queries=50 if args.quick else 200, compare_chunks=not args.quick)
        _say("matching: NCMEC-scale bank files (10M PDQ, 50M MD5 + SHA-1; 200k and 1M in quick mode)")
        bank_scale.run(report, args.quick)
    if "gate" in args.only:
        _say("gate: end to end, passthrough, memory, workers")
        photos = corpus.corpus(4 if args.quick else None, ("12MP",), ("JPEG",))
        endtoend.run(report, photos, args.quick)
    if "memory" in args.only and "gate" not in args.only:  # ``gate`` measures it already
        _say("memory: peak RSS of the gate and its hashing workers")
        endtoend.run_memory(
            report, corpus.corpus(4 if args.quick else None, ("12MP",), ("JPEG",)), args.quick
        )
    if "passthrough" in args.only and "gate" not in args.only:  # the gate section runs it too
        _say("passthrough: the gate, nginx, the default fronts and a bare aiohttp app, one upstream")
        passthrough.run_alone(report, args.quick)
    if "scale" in args.only:
        _say("scale: two replicas on one Postgres behind nginx vs one; the sizing table")
        scale.run(report, args.quick)
    if "scan" in args.only:
        _say("scan: upload-gate scan on the real PDS against hashing alone")
        scan.run(report, args.quick)
    if "retro" in args.only:
        _say("retro: a retro-hunt against the stored decisions (its own process, one core)")
        retro.run(report, args.quick)
    if "firehose" in args.only:
        _say("firehose: upload-gate watch on a generated firehose vs pure hashing")
        firehose.run(report, args.quick)
    if "decision_log" in args.only:
        _say("decision_log: 1,000 cached-verdict uploads/s, the decision log against a blackhole")
        decision_log.run(report, args.quick)
    md, js = report.write(args.out)
    print(report.markdown())
    if args.docs:
        every = set(args.only) == set(SECTIONS)
        for path in docs.write(report, every, "" if every else " --only " + " ".join(args.only)):
            _say(f"written into {path}")
    _say(f"done in {time.monotonic() - started:.0f} s: {md} and {js}")
    return 0


def _say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
