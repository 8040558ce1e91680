"""Every Prometheus object the gate exports, in one place, with bounded label values only.

Labels never carry hashes, DIDs, IPs or bank-controlled free text beyond bank names the operator
configured (bounded by the policy/bank files).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

DECISIONS = Counter(
    "upload_gate_decisions_total",
    "Uploads judged, by verdict and reason (match, no_match, allowlist, unhashable, unscannable, ...).",
    ["verdict", "reason"],
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
UPLOAD_ERRORS = Counter(
    "upload_gate_upload_errors_total", "Uploads answered with an error before a decision.", ["error"]
)
BUFFERED_BYTES = Gauge("upload_gate_buffered_bytes", "Upload bytes held in memory right now.")
BUDGET_REJECTIONS = Counter(
    "upload_gate_memory_budget_rejections_total",
    "Uploads refused with 503 because the memory budget was full.",
)
BODY_TIMEOUTS = Counter(
    "upload_gate_body_timeouts_total",
    "Uploads cut with 408 while their body arrived, by reason: idle (nothing for GATE_BODY_IDLE_TIMEOUT), "
    "rate (behind GATE_BODY_MIN_RATE).",
    ["reason"],
)
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
SHUTDOWN_REFUSALS = Counter(
    "upload_gate_shutdown_refusals_total",
    "Uploads answered 503 because the gate was stopping: arriving (body still arriving when the drain "
    "window ended), new (started after SIGTERM on a connection still open).",
    ["stage"],
)
VERDICT_CACHE_HITS = Counter(
    "upload_gate_verdict_cache_hits_total", "Uploads answered from the verdict cache."
)
REFUSED_TARGETS = Counter(
    "upload_gate_refused_targets_total",
    "Requests answered 400 for their request target, by reason (fragment, backslash, characters, form).",
    ["reason"],
)
PASSTHROUGH = Counter(
    "upload_gate_passthrough_requests_total", "Non-upload requests proxied, by kind.", ["kind"]
)
UPSTREAM_ERRORS = Counter("upload_gate_upstream_errors_total", "PDS unreachable or slow.", ["kind"])
POLICY_RELOADS = Counter("upload_gate_policy_reloads_total", "Policy reload attempts.", ["result"])
POLICY_INFO = Gauge("upload_gate_policy_info", "The policy version in force (value 1).", ["version"])
BANK_RELOADS = Counter("upload_gate_bank_reloads_total", "Local bank reloads.", ["result"])
BANK_SIZE = Gauge("upload_gate_bank_hashes", "Hashes loaded per local bank.", ["bank", "signal"])
BANK_INVALID_ROWS = Counter("upload_gate_bank_invalid_rows_total", "Bank rows skipped as invalid.", ["bank"])

# HMA matcher. "outcome" is bounded: match | no_match | cached | one of MatcherFailure.kind.
HMA_LOOKUPS = Counter(
    "upload_gate_hma_lookups_total", "HMA lookups (one hash each), by outcome.", ["outcome"]
)
HMA_LOOKUP_SECONDS = Histogram(
    "upload_gate_hma_lookup_seconds", "Round trip of one HMA lookup over HTTP.", buckets=STAGE_BUCKETS
)
HMA_FAILURES = Counter(
    "upload_gate_hma_failures_total",
    "Uploads whose HMA step failed (the policy's on_matcher_error applied), by kind.",
    ["kind"],
)
HMA_CACHE = Counter(
    "upload_gate_hma_cache_total", "HMA answer cache look-ups (hit rate = hit / (hit + miss)).", ["result"]
)
HMA_BREAKER_STATE = Gauge(
    "upload_gate_hma_breaker_state", "HMA circuit breaker: 0 closed, 1 half-open, 2 open."
)
HMA_BREAKER_TRANSITIONS = Counter(
    "upload_gate_hma_breaker_transitions_total", "HMA circuit breaker state changes, by new state.", ["state"]
)
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
DECISION_LOG_RECORDS = Counter(
    "upload_gate_decision_log_records_total",
    "Decisions by outcome: inserted, spooled, replayed, rejected (bad row, kept aside), dropped (lost).",
    ["outcome"],
)
DECISION_LOG_ACCEPTING = Gauge(
    "upload_gate_decision_log_accepting",
    "1 while decisions can be kept (queue has room; Postgres or the spool writable), else 0.",
)
EMBEDDED_POSTGRES_RESTARTS = Counter(
    "upload_gate_embedded_postgres_restarts_total",
    "Attempts to restart the embedded Postgres after it died, by result (ok, failed).",
    ["result"],
)
# ---- credentials: who may learn a verdict (gate/auth, gate/pipeline) ----
CREDENTIAL_CHECKS = Counter(
    "upload_gate_credential_checks_total",
    "Upload credentials checked, by stage and outcome. offline: passed, refused, unchecked (service "
    "auth), disagreed (the PDS accepted what the offline check refused). pds: accepted, refused (the "
    "PDS's answer to the forwarded upload or to the empty-body probe of a blocked one).",
    ["stage", "outcome"],
)
# ---- notifications (gate/notify) ----
WEBHOOK_DELIVERIES = Counter(
    "upload_gate_webhook_deliveries_total",
    "Webhook delivery attempts by outcome: delivered, retried (will try again), failed (gave up).",
    ["outcome"],
)
WEBHOOK_DEAD_LETTERS = Counter(
    "upload_gate_webhook_dead_letters_total",
    "Webhook events never delivered, by reason: exhausted (retries used up), refused (receiver 4xx), "
    "queue_full, shutdown.",
    ["reason"],
)
WEBHOOK_QUEUE = Gauge("upload_gate_webhook_queue_depth", "Webhook events waiting or between retries.")
# ---- review queue and PDS actions (gate/admin, gate/quarantine) ----
TAKEDOWNS = Counter(
    "upload_gate_takedowns_total",
    "Account takedowns on the PDS by outcome: applied, capped (daily cap reached), refused "
    "(DID not verified), failed (PDS error).",
    ["outcome"],
)
REVIEW_ACTIONS = Counter(
    "upload_gate_review_actions_total", "Review-queue accesses and decisions, by action.", ["action"]
)

# ---- evidence (gate/quarantine) ----
EVIDENCE_STORED = Counter(
    "upload_gate_evidence_total",
    "Evidence store attempts for blocked uploads, by result: stored, failed, capped (the uploader's "
    "[evidence] max_held_per_did_per_hour was reached: the verdict stood, nothing was kept).",
    ["verdict", "result"],
)
EVIDENCE_PURGED = Counter("upload_gate_evidence_purged_total", "Evidence items purged after their deadline.")
WITHHELD_BLOBS = Gauge("upload_gate_withheld_blobs", "Blocked SHA-256s whose blobs getBlob withholds.")
WITHHELD_REQUESTS = Counter(
    "upload_gate_withheld_requests_total", "getBlob requests answered 'Blob not found' by the gate."
)
