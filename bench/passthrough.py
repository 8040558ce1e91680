"""Passthrough (requests the gate does not judge) through the gate and through nginx, each in front of the
same stand-in upstream, against going straight to it, in the same run: small GETs at concurrency 1 and
16, a streamed 50 MB download, websocket frames.

nginx (Debian's nginx-light, one worker, bench/nginx.py) is the peer issue 18 holds the gate to: what a
reverse proxy costs when it does nothing but proxy. Direct, gate and nginx runs alternate in blocks, so a
busy moment on the shared machine falls on all three alike.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Iterator
from typing import Any

from bench import nginx, procs
from bench.report import Report, percentile_ms, steady_rate

PEERS = ("direct", "gate", "nginx")


def run(report: Report, up: str, gate_url: str, quick: bool) -> None:
    with _nginx(up) as nginx_url:
        urls = {"direct": up, "gate": gate_url} | ({"nginx": nginx_url} if nginx_url else {})
        rounds = 2 if quick else 4
        gets = {c: _gets(urls, c, (150 if quick else 1500) * max(1, c // 4), rounds) for c in (1, 16)}
        dl_rounds = 1 if quick else 3
        downloads = {
            name: 50
            * dl_rounds
            / procs.load({"kind": "download", "url": url, "total": dl_rounds, "mb": 50})["wall"]
            for name, url in urls.items()
        }
        ws = {
            name: statistics.median(
                procs.load(
                    {"kind": "ws", "url": url, "total": 5 if quick else 20, "count": 200, "size": 4096}
                )["latencies"]
            )
            * 1000
            for name, url in urls.items()
        }
    peers = [p for p in PEERS if p in urls]
    table = report.table(
        "Passthrough (non-upload requests): through the gate and through nginx vs straight to the upstream",
        ["request", *peers, "gate vs direct", *(["gate / nginx"] if "nginx" in urls else [])],
        note="nginx: Debian's nginx-light, one worker, keep-alive to the same upstream, bodies streamed "
        "(bench/nginx.py)."
        + ("" if "nginx" in urls else " nginx is not installed here: its column is missing."),
    )
    for c, s in gets.items():
        table.add(
            request=f"small GET p50 (c={c})",
            **{p: f"{s[p]['p50']:.2f} ms" for p in peers},
            **{"gate vs direct": f"+{s['gate']['p50'] - s['direct']['p50']:.2f} ms"},
            **(
                {"gate / nginx": f"added {_added(s, 'gate'):.2f} vs {_added(s, 'nginx'):.2f} ms"}
                if "nginx" in urls
                else {}
            ),
        )
        table.add(
            request=f"small GETs/s (c={c})",
            **{p: f"{s[p]['rate']:.0f}" for p in peers},
            **{"gate vs direct": f"{s['gate']['rate'] / s['direct']['rate']:.0%} of direct"},
            **({"gate / nginx": f"{s['gate']['rate'] / s['nginx']['rate']:.0%}"} if "nginx" in urls else {}),
        )
    table.add(
        request="50 MB streamed download",
        **{p: f"{downloads[p]:.0f} MB/s" for p in peers},
        **{"gate vs direct": f"{downloads['gate'] / downloads['direct']:.0%} of direct"},
        **({"gate / nginx": f"{downloads['gate'] / downloads['nginx']:.0%}"} if "nginx" in urls else {}),
    )
    table.add(
        request="websocket: 200 × 4 KB frames",
        **{p: f"{ws[p]:.1f} ms" for p in peers},
        **{"gate vs direct": f"+{ws['gate'] - ws['direct']:.1f} ms"},
        **(
            {"gate / nginx": f"+{ws['gate'] - ws['direct']:.1f} vs +{ws['nginx'] - ws['direct']:.1f} ms"}
            if "nginx" in urls
            else {}
        ),
    )
    _targets(report, gets[16], downloads, ws)


def _added(stats: dict[str, dict[str, float]], peer: str) -> float:
    return stats[peer]["p50"] - stats["direct"]["p50"]


def _targets(
    report: Report, c16: dict[str, dict[str, float]], downloads: dict[str, float], ws: dict[str, float]
) -> None:
    if "nginx" in c16:
        ratio = c16["gate"]["rate"] / c16["nginx"]["rate"]
        report.target(
            "passthrough small GETs at c=16: gate vs nginx in front of the same upstream",
            "≥ 50 % of nginx's throughput",
            f"{c16['gate']['rate']:.0f} vs {c16['nginx']['rate']:.0f} req/s = {ratio:.0%}",
            ratio >= 0.5,
            issue=18,
        )
    added = _added(c16, "gate")
    peer = f" (nginx adds {_added(c16, 'nginx'):.2f} ms)" if "nginx" in c16 else ""
    report.target(
        "passthrough small GETs at c=16: added p50",
        "≤ 0.5 ms",
        f"+{added:.2f} ms{peer}",
        added <= 0.5,
        issue=18,
    )
    share = downloads["gate"] / downloads["direct"]
    report.target(
        "streamed 50 MB download through the gate", "≥ 90 % of direct", f"{share:.0%}", share >= 0.9, issue=18
    )
    extra = ws["gate"] - ws["direct"]
    report.target(
        "websocket frames through the gate (200 × 4 KB)",
        "within 0.5 ms of direct",
        f"+{extra:.2f} ms",
        extra <= 0.5,
        issue=18,
    )


def _gets(urls: dict[str, str], c: int, total: int, rounds: int) -> dict[str, dict[str, float]]:
    """Small GETs at concurrency c: per peer, p50 ms and steady req/s over alternating blocks."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in urls}
    for url in urls.values():  # warm: connections, keep-alive pools
        procs.load({"kind": "get", "url": url, "concurrency": c, "total": 50})
    for _ in range(rounds):
        for name, url in urls.items():
            runs[name].append(procs.load({"kind": "get", "url": url, "concurrency": c, "total": total}))
    return {
        name: {
            "p50": percentile_ms([x for r in rs for x in r["latencies"]], 50),
            "rate": steady_rate([r["done"] for r in rs]),
        }
        for name, rs in runs.items()
    }


@contextlib.contextmanager
def _nginx(up: str) -> Iterator[str | None]:
    if nginx.binary() is None:
        yield None
        return
    with nginx.balancing([up]) as front:
        yield front.url
