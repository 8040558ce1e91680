"""Every Prometheus object the gate exports, in one place, with bounded label values only.

Labels never carry hashes, DIDs, IPs or bank-controlled free text beyond bank names the operator
configured (bounded by the policy/bank files). Where a label's values are a fixed vocabulary, every
value is created at import (``_zero``): the series exist at 0 from the first scrape, so ``rate()`` and
the alert rules (deploy/prometheus) see an increase from the first event, and an empty dashboard panel
means a wrong query, not a quiet gate.

Under ``serve --workers`` gauges are reported per process (a ``pid`` label); the shipped dashboard and
alert rules aggregate it away.

(Over 300 lines on purpose: one home for every metric the gate exports, so the dashboard and the alert
rules are checked against one list.)
"""

from __future__ import annotations

import platform
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from gate import package_version


def _zero(metric: MetricWrapperBase, *label_sets: Iterable[str]) -> None:
    """Create the series of every combination of the given label values (value 0)."""
    combos: list[tuple[str, ...]] = [()]
    for values in label_sets:
        combos = [(*c, v) for c in combos for v in values]
    for combo in combos:
        metric.labels(*combo)


STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

DECISIONS = Counter(
    "upload_gate_decisions_total",
    "Uploads judged, by verdict and reason (match, no_match, allowlist, unhashable, unscannable, ...).",
    ["verdict", "reason"],
)
_zero(
    DECISIONS,
    ("forward", "quarantine", "reject"),
    ("match", "no_match", "allowlist", "unhashable", "unscannable", "matcher_error"),
)
SHADOW_HITS = Counter(
    "upload_gate_shadow_hits_total", "Uploads a shadow rule would have acted on.", ["verdict", "rule"]
)
RULE_HITS = Counter("upload_gate_rule_hits_total", "Decisions driven by each rule.", ["rule", "verdict"])
UNSCANNED_FORWARDS = Counter(
    "upload_gate_unscanned_forwards_total",
    "Uploads forwarded without a full scan (matcher failed, unhashable, unscannable media).",
    ["reason"],
)
STAGE_SECONDS = Histogram(
    "upload_gate_stage_seconds", "Time spent per pipeline stage.", ["stage"], buckets=STAGE_BUCKETS
)
# Buckets for the whole upload, from the first byte read to the answer: a slow client's body is part of
# it (the "read" stage tells it apart).
UPLOAD_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
UPLOAD_OUTCOMES = ("forward", "quarantine", "reject", "refused", "error")
UPLOAD_SECONDS = Histogram(
    "upload_gate_upload_seconds",
    "Uploads from the gate taking them to its answer, by outcome: forward / quarantine / reject (judged, "
    "for a caller the PDS accepted), refused (the PDS refused the caller), error (answered with an error, "
    "or the client went away first).",
    ["outcome"],
    buckets=UPLOAD_BUCKETS,
)
_zero(UPLOAD_SECONDS, UPLOAD_OUTCOMES)
SIZE_BUCKETS = (1e3, 1e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 2e6, 5e6, 1e7, 2.5e7, 5e7, 1e8)
UPLOAD_BYTES = Histogram(
    "upload_gate_upload_bytes",
    "Size of each upload body read (after Content-Encoding).",
    buckets=SIZE_BUCKETS,
)
STAGES = ("read", "hash", "match", "evaluate", "forward", "probe", "evidence")
_zero(STAGE_SECONDS, STAGES)
BANK_DECISIONS = Counter(
    "upload_gate_bank_decisions_total",
    "Decisions driven by a match in each bank (a decision with matches in two banks counts in both), by "
    "verdict, matcher (local, hma, allowlist) and bank.",
    ["verdict", "source", "bank"],
)
UPLOAD_ERRORS = Counter(
    "upload_gate_upload_errors_total", "Uploads answered with an error before a decision.", ["error"]
)
BUFFERED_BYTES = Gauge("upload_gate_buffered_bytes", "Upload bytes held in memory right now.")
MEMORY_BUDGET_BYTES = Gauge(
    "upload_gate_memory_budget_bytes", "GATE_MEMORY_BUDGET: the most upload bytes held in memory at once."
)
BUDGET_REJECTIONS = Counter(
    "upload_gate_memory_budget_rejections_total",
    "Uploads refused with 503 because the memory budget could not hold their body or its hashing copy "
    "(evidence it cannot hold counts in upload_gate_evidence_total, result failed).",
)
BODY_TIMEOUTS = Counter(
    "upload_gate_body_timeouts_total",
    "Uploads cut with 408 while their body arrived, by reason: idle (nothing for GATE_BODY_IDLE_TIMEOUT), "
    "rate (behind GATE_BODY_MIN_RATE).",
    ["reason"],
)
_zero(BODY_TIMEOUTS, ("idle", "rate"))
PER_IP_REFUSALS = Counter(
    "upload_gate_per_ip_refusals_total",
    "Uploads answered 429 unread: their client address had GATE_MAX_UPLOADS_PER_IP uploads in progress.",
)
HEADER_TIMEOUTS = Counter(
    "upload_gate_header_timeouts_total",
    "Connections dropped for a request head not complete within GATE_HEADER_TIMEOUT, by state: fresh "
    "(a new connection), head (a later request on a kept-alive one).",
    ["state"],
)
_zero(HEADER_TIMEOUTS, ("fresh", "head"))
SHUTDOWN_REFUSALS = Counter(
    "upload_gate_shutdown_refusals_total",
    "Uploads answered 503 because the gate was stopping: arriving (body still arriving when the drain "
    "window ended), new (started after SIGTERM on a connection still open).",
    ["stage"],
)
_zero(SHUTDOWN_REFUSALS, ("arriving", "new"))
VERDICT_CACHE_HITS = Counter(
    "upload_gate_verdict_cache_hits_total", "Uploads answered from the verdict cache."
)
REFUSED_TARGETS = Counter(
    "upload_gate_refused_targets_total",
    "Requests answered 400 for their request target, by reason (fragment, backslash, characters, form).",
    ["reason"],
)
_zero(REFUSED_TARGETS, ("fragment", "backslash", "characters", "form"))
REFUSED_HEADERS = Counter(
    "upload_gate_refused_headers_total",
    "Requests answered 400 for a header, by reason (not_utf8: a value holds bytes that are not UTF-8, "
    "which the gate cannot relay unchanged).",
    ["reason"],
)
_zero(REFUSED_HEADERS, ("not_utf8",))
PASSTHROUGH = Counter(
    "upload_gate_passthrough_requests_total", "Non-upload requests proxied, by kind.", ["kind"]
)
UPSTREAM_ERRORS = Counter(
    "upload_gate_upstream_errors_total",
    "PDS unreachable or slow, or its answer not relayable (bad_header: a header value that is not UTF-8).",
    ["kind"],
)
_zero(PASSTHROUGH, ("http", "websocket"))
WEBSOCKET_STALLS = Counter(
    "upload_gate_websocket_stalls_total",
    "Websocket tunnels dropped because one end read nothing of what was waiting for it for 60 s, by the "
    "side that stalled: client, pds.",
    ["side"],
)
_zero(WEBSOCKET_STALLS, ("client", "pds"))
# Bound once: every passthrough request counts here, and a label lookup per request costs more than the inc.
PASSTHROUGH_HTTP = PASSTHROUGH.labels("http")
_zero(UPSTREAM_ERRORS, ("timeout", "unreachable", "bad_header"))
POLICY_RELOADS = Counter("upload_gate_policy_reloads_total", "Policy reload attempts.", ["result"])
_zero(POLICY_RELOADS, ("ok", "error"))
POLICY_RELOAD_OK = Gauge(
    "upload_gate_policy_last_reload_successful",
    "0 while the policy file on disk was refused at its last reload (the last good policy is in force).",
)
POLICY_RELOAD_OK.set(1)
BUILD_INFO = Gauge(
    "upload_gate_build_info",
    "Value 1, labelled with the gate's version, its Python and the policy version in force.",
    ["version", "python", "policy_version"],
)
BANK_RELOADS = Counter("upload_gate_bank_reloads_total", "Local bank reloads.", ["result"])
_zero(BANK_RELOADS, ("ok", "error"))
BANK_RELOAD_OK = Gauge(
    "upload_gate_bank_last_reload_successful",
    "0 while the bank files on disk were refused at their last reload (the last good banks are in force).",
)
BANK_RELOAD_OK.set(1)
BANK_SIZE = Gauge("upload_gate_bank_hashes", "Hashes loaded per local bank.", ["bank", "signal"])
BANK_INVALID_ROWS = Counter("upload_gate_bank_invalid_rows_total", "Bank rows skipped as invalid.", ["bank"])
BANK_SKIPPED_ROWS = Gauge(
    "upload_gate_bank_skipped_rows",
    "Invalid rows skipped in each local bank as loaded now (their hashes are not matched until fixed).",
    ["bank"],
)

# ---- hashing (gate/hashing/pool.py: measured in the gate, around each worker's job) ----
HASH_SECONDS = Histogram(
    "upload_gate_hash_seconds",
    "One body hashed by a worker (sent, decoded, hashed, answered), by the media type it was judged as.",
    ["media_type"],
    buckets=STAGE_BUCKETS,
)
HASH_QUEUE_SECONDS = Histogram(
    "upload_gate_hash_queue_seconds",
    "Time an upload waited for an idle hashing worker.",
    buckets=STAGE_BUCKETS,
)
HASHED_FRAMES = Histogram(
    "upload_gate_hashed_frames",
    "Pictures decoded and hashed per body (animation frames, pages, icon sizes); the sum is every frame.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
HASH_WORKER_RESTARTS = Counter(
    "upload_gate_hash_worker_restarts_total",
    "Hashing workers replaced, by why the last one ended: timeout (past the decode deadline), killed "
    "(SIGKILL from outside, e.g. the OOM killer), crashed (any other death), malformed (a bad answer).",
    ["reason"],
)
_zero(HASH_WORKER_RESTARTS, ("timeout", "killed", "crashed", "malformed"))

# HMA matcher. "outcome" is bounded: match | no_match | cached | one of MatcherFailure.kind.
HMA_LOOKUPS = Counter(
    "upload_gate_hma_lookups_total", "HMA lookups (one hash each), by outcome.", ["outcome"]
)
_zero(HMA_LOOKUPS, ("match", "no_match", "cached"))
HMA_LOOKUP_SECONDS = Histogram(
    "upload_gate_hma_lookup_seconds", "Round trip of one HMA lookup over HTTP.", buckets=STAGE_BUCKETS
)
HMA_FAILURES = Counter(
    "upload_gate_hma_failures_total",
    "Uploads whose HMA step failed (the policy's on_matcher_error applied), by kind.",
    ["kind"],
)
_zero(
    HMA_FAILURES,
    ("refused", "timeout", "http_5xx", "http_4xx", "not_ready", "malformed", "breaker_open", "error"),
)
HMA_CACHE = Counter(
    "upload_gate_hma_cache_total", "HMA answer cache look-ups (hit rate = hit / (hit + miss)).", ["result"]
)
_zero(HMA_CACHE, ("hit", "miss"))
HMA_BREAKER_STATE = Gauge(
    "upload_gate_hma_breaker_state", "HMA circuit breaker: 0 closed, 1 half-open, 2 open."
)
HMA_BREAKER_TRANSITIONS = Counter(
    "upload_gate_hma_breaker_transitions_total", "HMA circuit breaker state changes, by new state.", ["state"]
)
_zero(HMA_BREAKER_TRANSITIONS, ("closed", "half_open", "open"))
HMA_READY = Gauge("upload_gate_hma_ready", "1 when HMA's GET /status last answered I-AM-ALIVE.")
HMA_BANK_RATIO = Gauge(
    "upload_gate_hma_bank_matching_ratio",
    "matching_enabled_ratio of each HMA bank the policy relies on.",
    ["bank"],
)
# ---- decision log (gate/store) ----
WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DECISION_LOG_QUEUE = Gauge("upload_gate_decision_log_queue_depth", "Decisions waiting for the writer.")
DECISION_LOG_SPOOL_BYTES = Gauge(
    "upload_gate_decision_log_spool_bytes", "Bytes of spooled decisions not yet replayed into Postgres."
)
DECISION_LOG_SPOOL_RECORDS = Gauge(
    "upload_gate_decision_log_spool_records", "Spooled decisions not yet replayed into Postgres."
)
DECISION_LOG_WRITE_SECONDS = Histogram(
    "upload_gate_decision_log_write_seconds",
    "One batch write: postgres (insert), spool (append + fsync), replay (spool chunk into postgres).",
    ["target"],
    buckets=WRITE_BUCKETS,
)
DECISION_LOG_WRITE_FAILURES = Counter(
    "upload_gate_decision_log_write_failures_total",
    "Failed batch writes by target (postgres, spool, replay) and kind (unreachable, timeout, data, io).",
    ["target", "kind"],
)
_zero(DECISION_LOG_WRITE_FAILURES, ("postgres", "replay"), ("unreachable", "timeout", "data"))
_zero(DECISION_LOG_WRITE_FAILURES, ("spool",), ("io",))
DECISION_LOG_RECORDS = Counter(
    "upload_gate_decision_log_records_total",
    "Decisions by outcome: inserted, spooled, replayed, rejected (bad row, kept aside), dropped (lost).",
    ["outcome"],
)
_zero(DECISION_LOG_RECORDS, ("inserted", "spooled", "replayed", "rejected", "dropped"))
DECISION_LOG_ACCEPTING = Gauge(
    "upload_gate_decision_log_accepting",
    "1 while decisions can be kept (queue has room; Postgres or the spool writable), else 0.",
)
EMBEDDED_POSTGRES_RESTARTS = Counter(
    "upload_gate_embedded_postgres_restarts_total",
    "Attempts to restart the embedded Postgres after it died, by result (ok, failed).",
    ["result"],
)
_zero(EMBEDDED_POSTGRES_RESTARTS, ("ok", "failed"))
# ---- credentials: who may learn a verdict (gate/auth, gate/pipeline) ----
CREDENTIAL_CHECKS = Counter(
    "upload_gate_credential_checks_total",
    "Upload credentials checked, by stage and outcome. offline: passed, refused, unchecked (service "
    "auth), disagreed (the PDS accepted what the offline check refused). pds: accepted, refused (the "
    "PDS's answer to the forwarded upload or to the empty-body probe of a blocked one).",
    ["stage", "outcome"],
)
_zero(CREDENTIAL_CHECKS, ("offline",), ("passed", "refused", "unchecked", "disagreed"))
_zero(CREDENTIAL_CHECKS, ("pds",), ("accepted", "refused"))
# ---- notifications (gate/notify) ----
WEBHOOK_DELIVERIES = Counter(
    "upload_gate_webhook_deliveries_total",
    "Webhook delivery attempts by outcome: delivered, retried (will try again), failed (gave up).",
    ["outcome"],
)
_zero(WEBHOOK_DELIVERIES, ("delivered", "retried", "failed"))
WEBHOOK_DEAD_LETTERS = Counter(
    "upload_gate_webhook_dead_letters_total",
    "Webhook events never delivered, by reason: exhausted (retries used up), refused (receiver 4xx), "
    "queue_full, shutdown.",
    ["reason"],
)
_zero(WEBHOOK_DEAD_LETTERS, ("exhausted", "refused", "queue_full", "shutdown"))
WEBHOOK_QUEUE = Gauge("upload_gate_webhook_queue_depth", "Webhook events waiting or between retries.")
# ---- review queue and PDS actions (gate/admin, gate/quarantine) ----
TAKEDOWNS = Counter(
    "upload_gate_takedowns_total",
    "Account and blob takedowns on the PDS by outcome: applied, already (the PDS had the blob down "
    "already: nothing done, no cap slot), capped (daily cap reached), refused (DID not verified), failed "
    "(PDS error).",
    ["outcome"],
)
_zero(TAKEDOWNS, ("applied", "already", "capped", "refused", "failed"))
RETRO_HITS = Counter(
    "upload_gate_retro_hits_total",
    "Stored decisions re-judged by a retro-hunt after a bank gained entries, by the new verdict.",
    ["verdict"],
)
_zero(RETRO_HITS, ("forward", "quarantine", "reject"))
RETRO_RUNS = Counter(
    "upload_gate_retro_runs_total",
    "Retro-hunts run by this process, by kind (bank: after a local bank gained entries, or on demand; hma: "
    "a pass over the stored PDQ hashes after HMA's index was rebuilt) and outcome: done (to the end of its "
    "window), stopped (an HMA lookup failed: the rest of the window was not looked up, and the pass is "
    "owed still), failed (it raised: the gate's log says why).",
    ["kind", "outcome"],
)
_zero(RETRO_RUNS, ("bank",), ("done", "failed"))  # a bank hunt does not stop early: no "stopped"
_zero(RETRO_RUNS, ("hma",), ("done", "stopped", "failed"))
REVIEW_ACTIONS = Counter(
    "upload_gate_review_actions_total", "Review-queue accesses and decisions, by action.", ["action"]
)
_zero(
    REVIEW_ACTIONS,
    ("list", "preview", "reveal", "release", "confirm", "reported", "legal_hold", "legal_hold_lifted"),
)
# ---- the hash/match/scan API (gate/api) ----
API_REQUESTS = Counter(
    "upload_gate_api_requests_total",
    "Hash/match/scan API requests (/api/v1) by endpoint and answer: ok, or the XRPC error name.",
    ["endpoint", "answer"],
)

# ---- evidence (gate/quarantine) ----
EVIDENCE_STORED = Counter(
    "upload_gate_evidence_total",
    "Evidence store attempts for blocked uploads, by result: stored, failed, capped (the uploader's "
    "[evidence] max_held_per_did_per_hour was reached: the verdict stood, nothing was kept).",
    ["verdict", "result"],
)
_zero(EVIDENCE_STORED, ("quarantine", "reject"), ("stored", "failed", "capped"))
EVIDENCE_PURGED = Counter("upload_gate_evidence_purged_total", "Evidence items purged after their deadline.")
WITHHELD_BLOBS = Gauge("upload_gate_withheld_blobs", "Blocked SHA-256s whose blobs getBlob withholds.")
WITHHELD_REQUESTS = Counter(
    "upload_gate_withheld_requests_total", "getBlob requests answered 'Blob not found' by the gate."
)
EVIDENCE_ITEMS = Gauge(
    "upload_gate_evidence_items",
    "Evidence items whose sealed bytes are kept, by state: held (waiting for review), confirmed "
    "(waiting for a report), reported. Read from Postgres when /metrics is scraped.",
    ["state"],
)
_zero(EVIDENCE_ITEMS, ("held", "confirmed", "reported"))
REVIEW_OLDEST_HELD_SECONDS = Gauge(
    "upload_gate_review_oldest_held_seconds",
    "Age of the oldest item waiting for review (0: none). Read from Postgres when /metrics is scraped.",
)
# ---- readiness (gate/admin/health.py) ----
READY = Gauge(
    "upload_gate_ready",
    "1 when a readiness check passes, by check (policy, decision_log, evidence, hma, postgres): what "
    "/readyz says, asked when /metrics is scraped.",
    ["check"],
)


def policy_in_force(version: str, previous: str | None) -> None:
    """``upload_gate_build_info`` names the policy version in force. The previous series is zeroed
    before it is removed: under ``--workers`` its value stays in this process's file (multiprocess
    mode ignores removals), and a stale 1 would name two policies at once."""
    if previous is not None and previous != version:
        old = BUILD_INFO.labels(package_version(), platform.python_version(), previous)
        old.set(0)
        BUILD_INFO.remove(package_version(), platform.python_version(), previous)
    BUILD_INFO.labels(package_version(), platform.python_version(), version).set(1)


# ---- the labeler (gate/labels) ----
LABELS_SIGNED = Counter(
    "upload_gate_labels_signed_total",
    "Labels signed by the labeler key (each once), by kind: applied, or negated (a label withdrawn).",
    ["kind"],
)
_zero(LABELS_SIGNED, ("applied", "negated"))
LABEL_REQUESTS = Counter(
    "upload_gate_label_requests_total",
    "Labeler requests by endpoint (query, subscribe) and outcome: ok, invalid (bad parameters), "
    "unavailable (Postgres), refused (too many subscribers), slow (a subscriber cut as too slow).",
    ["endpoint", "outcome"],
)
_zero(LABEL_REQUESTS, ("query", "subscribe"), ("ok", "invalid", "unavailable", "refused", "slow"))
LABEL_SUBSCRIBERS = Gauge("upload_gate_label_subscribers", "subscribeLabels websockets open now.")

# ---- the firehose watcher (gate/firehose) ----
FIREHOSE_EVENTS = Counter(
    "upload_gate_firehose_events_total",
    "Firehose frames by kind: commit, other (#identity, #account, #sync…), repeat (delivered again after "
    "a reconnect), malformed (did not decode), error (the stream's own error frame).",
    ["kind"],
)
_zero(FIREHOSE_EVENTS, ("commit", "other", "repeat", "malformed", "error"))
FIREHOSE_RECORDS = Counter(
    "upload_gate_firehose_records_total",
    "Records created or updated in commits, by collection family: bsky (app.bsky.*, chat.bsky.*) or other "
    "(every other record type: walked for blobs all the same).",
    ["family"],
)
_zero(FIREHOSE_RECORDS, ("bsky", "other"))
FIREHOSE_BLOBS = Counter(
    "upload_gate_firehose_blobs_total",
    "Blob references seen on the firehose, by outcome: judged, seen (judged before: not fetched), "
    "skipped (past the lag limit with on_lag = skip), failed (not fetched or not judged: see "
    "upload_gate_firehose_failures_total).",
    ["outcome"],
)
_zero(FIREHOSE_BLOBS, ("judged", "seen", "skipped", "failed"))
FIREHOSE_FAILURES = Counter(
    "upload_gate_firehose_failures_total",
    "Blobs not judged, by stage (identity, fetch, judge) and kind (not_found, refused, timeout, "
    "unsafe_endpoint, cid_mismatch…).",
    ["stage", "kind"],
)
FIREHOSE_FETCHES = Counter("upload_gate_firehose_fetches_total", "getBlob requests sent to authors' PDSes.")
FIREHOSE_REPORTS = Counter(
    "upload_gate_firehose_reports_total",
    "createReport calls to the moderation service (GATE_REPORT_SERVICE_URL), by outcome (sent, failed).",
    ["outcome"],
)
_zero(FIREHOSE_REPORTS, ("sent", "failed"))
FIREHOSE_LAG = Gauge(
    "upload_gate_firehose_lag_seconds", "Age of the newest commit read from the firehose when it was read."
)
FIREHOSE_LAG_LIMIT = Gauge(
    "upload_gate_firehose_lag_limit_seconds",
    "The policy's [firehose] max_lag_seconds in force: a lag above it is skipped or paused (on_lag).",
)
FIREHOSE_QUEUE = Gauge("upload_gate_firehose_queue_depth", "Commits read and waiting for a worker.")
FIREHOSE_CURSOR = Gauge("upload_gate_firehose_cursor", "The durable cursor: every event up to it is handled.")
