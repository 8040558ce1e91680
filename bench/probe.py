"""``python -m bench.probe [--rounds N]``: what asking the PDS costs, against the real PDS.

Before it reveals a block verdict the gate sends the PDS the same upload request with an empty body
(gate/pipeline.py): the PDS checks the credential and stores a 0-byte temporary blob. This measures,
in one run against the real ``@atproto/pds`` of the end-to-end suite, with a real account:

- the probe itself (an empty-body uploadBlob) next to an ordinary 1 MB upload to the same PDS;
- through a running gate: a banked upload (read, hash, match, probe, answer) next to a clean upload of
  the same size (read, hash, match, forward), so the probe's share of a blocked upload is visible.

It is paid on block verdicts only (a forwarded upload is the PDS's own check). Medians of ``--rounds``.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from PIL import Image

from tests.e2e import gate_server, pds_server
from tests.e2e.endpoints import Endpoint, new_user

UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"


def photo(seed: int, side: int = 700) -> bytes:
    """A noisy JPEG of about 1 MB: each seed its own bytes and picture."""
    rng = random.Random(seed)
    img = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=92)
    return out.getvalue()


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


def timed(rounds: int, send: Callable[[int], httpx.Response], status: int) -> list[float]:
    out: list[float] = []
    for n in range(rounds):
        started = time.perf_counter()
        r = send(n)
        out.append(time.perf_counter() - started)
        assert r.status_code == status, r.text
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-probe-"))
    pds = pds_server.start(work)
    try:
        banned = photo(0)
        (work / "banned.jpg").write_bytes(banned)
        gate = gate_server.start(
            work, pds.url, {"banned": [work / "banned.jpg"], "held": [work / "banned.jpg"]}
        )
        try:
            user = new_user(Endpoint("gate", gate.url, True))
            auth = {"Authorization": f"Bearer {user.access_jwt}", "Content-Type": "image/jpeg"}
            with httpx.Client(timeout=60) as http:

                def to(base: str, body: Callable[[int], bytes]) -> Callable[[int], httpx.Response]:
                    return lambda n: http.post(base + UPLOAD, content=body(n), headers=auth)

                seeds = iter(range(1, 10**6))
                rows = {
                    "PDS: empty-body upload (the probe)": median_ms(
                        timed(args.rounds, to(pds.url, lambda n: b""), 200)
                    ),
                    "PDS: 1 MB upload": median_ms(
                        timed(args.rounds, to(pds.url, lambda n: photo(next(seeds))), 200)
                    ),
                    "gate: clean 1 MB upload (forwarded)": median_ms(
                        timed(args.rounds, to(gate.url, lambda n: photo(next(seeds))), 200)
                    ),
                    # The same banked bytes each time: the verdict is cached after the first, so this is
                    # read + SHA-256 + probe + answer.
                    "gate: banked 1 MB upload (probe, refused)": median_ms(
                        timed(args.rounds, to(gate.url, lambda n: banned), 400)
                    ),
                }
            user.client.request.close()
        finally:
            gate.stop()
    finally:
        pds.proc.stop()
    width = max(map(len, rows))
    print(f"{'':{width}}  median ms")
    for name, ms in rows.items():
        print(f"{name:{width}}  {ms:8.2f}")
    probe, upload = rows["PDS: empty-body upload (the probe)"], rows["PDS: 1 MB upload"]
    print(f"\nthe probe costs {probe / upload:.2f}x a 1 MB upload to the same PDS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
