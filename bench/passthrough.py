"""Passthrough (requests the gate does not judge): through the gate, through nginx and through a bare
aiohttp relay, each in front of the same stand-in upstream, and through the default front, against going
straight to the upstream, in the same run: small GETs at concurrency 1 and 16, a streamed 50 MB download,
websocket frames.

- nginx (Debian's nginx-light, one worker, bench/nginx.py) is the peer issue 18 holds the gate to: what a
  reverse proxy costs when it does nothing but proxy.
- The aiohttp relay (bench/relay.py) is the floor under any aiohttp proxy: aiohttp's server and client
  rounds on one event loop and nothing else. The upstream itself (bench/upstream.py, a bare aiohttp app
  answering a fixed JSON) is the server half of that floor: "direct".
- The default front is nginx running the shipped deploy/nginx/upload-gate.conf in front of the gate and
  the upstream, asked for a route that is not an upload: it goes straight to the PDS, and the gate's own
  passthrough counter shows that none of those requests reached it.

Peers run in alternating blocks, so a busy moment on the shared machine falls on all of them alike; the
CPU each proxy process spends per request (read from /proc) does not depend on what else runs.
"""

from __future__ import annotations

import contextlib
import re
import statistics
import urllib.request
from collections.abc import Iterator
from typing import Any

from bench import nginx, procs
from bench.report import Report, percentile_ms, steady_rate
from tests.support.boot import GateProcess

# Columns, in order; "fronts" is the shipped nginx site (gate routes only) in front of gate and upstream.
PEERS = ("direct", "gate", "nginx", "relay", "fronts")
HEADINGS = {
    "direct": "direct",
    "gate": "gate",
    "nginx": "nginx",
    "relay": "aiohttp relay",
    "fronts": "default front (nginx site)",
}
SMALL_GET = "/xrpc/_health"  # not an upload, not getBlob: the default front sends it to the PDS
_PASSED = re.compile(r'^upload_gate_passthrough_requests_total\{kind="http"\} (\S+)$', re.MULTILINE)


def run_alone(report: Report, quick: bool) -> None:
    """This section on its own (``--only passthrough``): its own upstream and gate."""
    with procs.upstream() as up, procs.gate(up) as g:
        run(report, up, g, quick)


def run(report: Report, up: str, gate: GateProcess, quick: bool) -> None:
    with procs.relay(up) as relay, _fronts(up, gate.url) as (plain, site):
        urls = {"direct": up, "gate": gate.url, "relay": relay.url}
        pids = {"gate": [gate.pid], "relay": [relay.pid]}
        if plain is not None and site is not None:
            urls |= {"nginx": plain.url, "fronts": site.url}
            pids |= {"nginx": [plain.pid], "fronts": [site.pid]}
        rounds = 2 if quick else 4
        before = _gate_passed(gate)
        gets = {c: _gets(urls, pids, c, (150 if quick else 1500) * max(1, c // 4), rounds) for c in (1, 16)}
        # What reached the gate while the default front served its share of the GETs: the gate's own
        # blocks plus nothing — the front's requests went to the PDS (its access log names which).
        gate_requests = sum(int(gets[c]["gate"]["requests"]) for c in gets)
        reached_gate = _gate_passed(gate) - before - gate_requests
        fronts_spread = site.upstreams() if site is not None else None
        streaming: list[str] = [p for p in ("direct", "gate", "nginx", "relay") if p in urls]
        downloads = _downloads(urls, streaming, 3 if quick else 8)
        # The relay does not bridge websockets: it is a floor for plain requests only.
        ws_urls = {name: urls[name] for name in streaming if name != "relay"}
        ws, ws_cpu = _websockets(ws_urls, pids, 3 if quick else 6, 40 if quick else 100)
    peers = [p for p in PEERS if p in urls]
    _table(report, peers, gets, downloads, ws, ws_cpu, reached_gate, fronts_spread, gate.url)
    _targets(report, gets[16], downloads, ws, reached_gate, fronts_spread)


def _table(
    report: Report,
    peers: list[str],
    gets: dict[int, dict[str, dict[str, float]]],
    downloads: dict[str, float],
    ws: dict[str, float],
    ws_cpu: dict[str, float],
    reached_gate: int,
    fronts_spread: dict[str, int] | None,
    gate_url: str,
) -> None:
    has_nginx = "nginx" in peers
    compare = ["gate vs direct", "gate / relay", *(["gate / nginx", "relay / nginx"] if has_nginx else [])]
    note = (
        "nginx: Debian's nginx-light, one worker, keep-alive to the same upstream, bodies streamed "
        "(bench/nginx.py). aiohttp relay: a bare aiohttp server + ClientSession relaying each request "
        "(bench/relay.py), the floor under any aiohttp proxy; direct is itself a bare aiohttp app "
        "answering a fixed JSON. Default front: nginx running the shipped deploy/nginx/upload-gate.conf "
        "(TLS off, ports set) in front of the gate and the upstream, asked for a route that is not an "
        "upload. CPU per request: the proxy's own processes (nginx: master and worker), read from /proc."
    )
    if has_nginx and fronts_spread is not None:
        gate_addr = gate_url.removeprefix("http://")
        note += (
            f" Of the default front's {sum(fronts_spread.values())} requests, nginx sent "
            f"{fronts_spread.get(gate_addr, 0)} to the gate; the gate's passthrough counter grew by "
            f"{reached_gate} beyond its own blocks."
        )
    else:
        note += " nginx is not installed here: its columns are missing."
    table = report.table(
        "Passthrough (non-upload requests): through the gate, nginx, a bare aiohttp relay and the default "
        "front vs straight to the upstream",
        ["request", *(HEADINGS[p] for p in peers), *compare],
        note=note,
    )
    pairs = [("gate", "relay"), *([("gate", "nginx"), ("relay", "nginx")] if has_nginx else [])]
    for c, s in gets.items():
        row: dict[str, Any] = {HEADINGS[p]: f"{s[p]['p50']:.2f} ms" for p in peers}
        row["gate vs direct"] = f"+{_added(s, 'gate'):.2f} ms"
        row |= {f"{a} / {b}": f"added {_added(s, a):.2f} vs {_added(s, b):.2f} ms" for a, b in pairs}
        table.add(request=f"small GET p50 (c={c})", **row)
        rates = {p: s[p]["rate"] for p in peers}
        table.add(
            request=f"small GETs/s (c={c})",
            **{HEADINGS[p]: f"{r:.0f}" for p, r in rates.items()},
            **_shares(rates, pairs),
        )
    c16 = gets[16]
    row = {HEADINGS[p]: f"{c16[p]['cpu_us']:.0f} µs" for p in peers if "cpu_us" in c16[p]}
    if has_nginx:
        row["gate / nginx"] = f"{c16['gate']['cpu_us'] / c16['nginx']['cpu_us']:.1f}×"
        row["relay / nginx"] = f"{c16['relay']['cpu_us'] / c16['nginx']['cpu_us']:.1f}×"
    row["gate / relay"] = f"{c16['gate']['cpu_us'] / c16['relay']['cpu_us']:.2f}×"
    table.add(request="proxy CPU per small GET (c=16)", **row)
    row = {HEADINGS[p]: f"{downloads[p]:.0f} MB/s" for p in downloads}
    table.add(request="50 MB streamed download", **row, **_shares(downloads, pairs))
    row = {HEADINGS[p]: f"{ws[p]:.2f} ms" for p in ws}
    row["gate vs direct"] = f"{ws['gate'] - ws['direct']:+.2f} ms"
    if has_nginx:
        row["gate / nginx"] = f"{ws['gate'] - ws['direct']:+.2f} vs {ws['nginx'] - ws['direct']:+.2f} ms"
    table.add(request="websocket: 200 × 4 KB frames", **row)
    row = {HEADINGS[p]: f"{ws_cpu[p]:.0f} µs" for p in ws_cpu}
    if has_nginx:
        row["gate / nginx"] = f"{ws_cpu['gate'] / ws_cpu['nginx']:.1f}×"
    table.add(request="proxy CPU per websocket round", **row)


def _shares(values: dict[str, float], pairs: list[tuple[str, str]]) -> dict[str, str]:
    """A throughput row's comparison columns: the gate's share of direct, and each pair's share."""
    shares = {f"{a} / {b}": f"{values[a] / values[b]:.0%}" for a, b in pairs}
    return {"gate vs direct": f"{values['gate'] / values['direct']:.0%} of direct", **shares}


def _added(stats: dict[str, dict[str, float]], peer: str) -> float:
    return stats[peer]["p50"] - stats["direct"]["p50"]


def _targets(
    report: Report,
    c16: dict[str, dict[str, float]],
    downloads: dict[str, float],
    ws: dict[str, float],
    reached_gate: int,
    fronts_spread: dict[str, int] | None,
) -> None:
    if "nginx" in c16:
        ratio = c16["gate"]["rate"] / c16["nginx"]["rate"]
        floor = c16["relay"]["rate"] / c16["nginx"]["rate"]
        report.target(
            "passthrough small GETs at c=16: gate vs nginx in front of the same upstream",
            "≥ 50 % of nginx's throughput",
            f"{c16['gate']['rate']:.0f} vs {c16['nginx']['rate']:.0f} req/s = {ratio:.0%} "
            f"(a bare aiohttp relay: {floor:.0%})",
            ratio >= 0.5,
            issue=18,
        )
    added = _added(c16, "gate")
    peers = f"nginx adds {_added(c16, 'nginx'):.2f} ms, " if "nginx" in c16 else ""
    report.target(
        "passthrough small GETs at c=16: added p50",
        "≤ 0.5 ms",
        f"+{added:.2f} ms ({peers}a bare aiohttp relay {_added(c16, 'relay'):.2f} ms)",
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
        f"{extra:+.2f} ms" + (f" (nginx {ws['nginx'] - ws['direct']:+.2f} ms)" if "nginx" in ws else ""),
        extra <= 0.5,
        issue=18,
    )
    if "fronts" in c16 and fronts_spread is not None:
        share = c16["fronts"]["rate"] / c16["nginx"]["rate"]
        report.target(
            "default front (shipped nginx site): routes other than uploadBlob/getBlob never reach the gate",
            "0 requests reach the gate",
            f"{reached_gate} of {sum(fronts_spread.values())} reached it; small GETs at c=16 "
            f"{share:.0%} of nginx alone, {_added(c16, 'fronts'):+.2f} ms p50",
            reached_gate == 0,
            issue=18,
        )


def _gets(
    urls: dict[str, str], pids: dict[str, list[int]], c: int, total: int, rounds: int
) -> dict[str, dict[str, float]]:
    """Small GETs at concurrency c: per peer, p50 ms, steady req/s over alternating blocks, requests
    sent, and (for a proxy whose processes we know) its CPU µs per request."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in urls}
    cpu: dict[str, float] = dict.fromkeys(pids, 0.0)
    for url in urls.values():  # warm: connections, keep-alive pools
        procs.load({"kind": "get", "url": url, "concurrency": c, "total": 50, "path": SMALL_GET})
    for _ in range(rounds):
        for name, url in urls.items():
            start = sum(procs.tree_cpu_seconds(p) for p in pids.get(name, []))
            runs[name].append(
                procs.load({"kind": "get", "url": url, "concurrency": c, "total": total, "path": SMALL_GET})
            )
            if name in pids:
                cpu[name] += sum(procs.tree_cpu_seconds(p) for p in pids[name]) - start
    out: dict[str, dict[str, float]] = {}
    for name, rs in runs.items():
        out[name] = {
            "p50": percentile_ms([x for r in rs for x in r["latencies"]], 50),
            "rate": steady_rate([r["done"] for r in rs]),
            "requests": float(50 + total * rounds),
        }
        if name in cpu:
            out[name]["cpu_us"] = cpu[name] / (total * rounds) * 1e6
    return out


def _downloads(urls: dict[str, str], peers: list[str], blocks: int) -> dict[str, float]:
    """MB/s of a streamed 50 MB download, per peer: the median over alternating blocks. One download
    lasts 10–30 ms here, so a single busy moment of the shared machine moved one reading by half; each
    block's first download warms its connection and is not counted."""
    rates: dict[str, list[float]] = {name: [] for name in peers}
    for _ in range(blocks):
        for name in peers:
            result = procs.load({"kind": "download", "url": urls[name], "total": 2, "mb": 50})
            rates[name].append(50 / result["latencies"][1])
    return {name: statistics.median(r) for name, r in rates.items()}


def _websockets(
    urls: dict[str, str], pids: dict[str, list[int]], blocks: int, rounds: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Websocket rounds (the client asks for 200 × 4 KB frames, the upstream sends them and "done"):
    per peer, the median ms per round over alternating blocks (a busy moment on the shared machine
    falls on every peer alike; each block's connection is warmed by one round first), and the proxy's
    CPU µs per round."""
    lat: dict[str, list[float]] = {name: [] for name in urls}
    cpu: dict[str, float] = {name: 0.0 for name in pids if name in urls}
    for _ in range(blocks):
        for name, url in urls.items():
            start = sum(procs.tree_cpu_seconds(p) for p in pids.get(name, []))
            job = {"kind": "ws", "url": url, "total": rounds + 1, "count": 200, "size": 4096}
            lat[name] += procs.load(job)["latencies"][1:]
            if name in cpu:
                cpu[name] += sum(procs.tree_cpu_seconds(p) for p in pids[name]) - start
    medians = {name: statistics.median(xs) * 1000 for name, xs in lat.items()}
    return medians, {name: c / (blocks * (rounds + 1)) * 1e6 for name, c in cpu.items()}


def _gate_passed(gate: GateProcess) -> int:
    """The gate's count of passthrough requests, from its metrics listener."""
    with urllib.request.urlopen(gate.admin_url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    found = _PASSED.search(text)
    return int(float(found[1])) if found else 0


@contextlib.contextmanager
def _fronts(up: str, gate_url: str) -> Iterator[tuple[nginx.Nginx | None, nginx.Nginx | None]]:
    """nginx alone in front of the upstream, and the shipped site in front of gate and upstream."""
    if nginx.binary() is None:
        yield None, None
        return
    with nginx.balancing([up]) as plain, nginx.shipped_site(gate_url, up) as site:
        yield plain, site
