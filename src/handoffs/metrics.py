"""What operators watch: HTTP requests, open streams, the outbox backlog, jobs and their outcomes,
model tokens, batching, deliveries.

Recorded with ``prometheus_client`` into its default registry (or, under
``handoffs serve --workers N``, its multiprocess files: ``PROMETHEUS_MULTIPROC_DIR``).
An API replica serves them at ``GET /metrics`` (``handoffs.metrics_endpoint``,
behind ``METRICS_TOKEN``); a worker process on ``WORKER_METRICS_PORT``.

Names follow Prometheus conventions (``_total`` is appended to counters,
durations in seconds). Labels stay low-cardinality: never an account,
handoff or user id.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

JOBS = Counter(
    "handoffs_jobs",
    "Outbox jobs run by a worker, by function and outcome "
    "(done, retry, failed, duplicate: already done or failed, gone: no outbox row).",
    ["function", "outcome"],
)
JOB_SECONDS = Histogram(
    "handoffs_job_duration_seconds",
    "Wall time of one job attempt, model and vendor calls included.",
    ["function"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
AI_TOKENS = Counter(
    "handoffs_ai_tokens",
    "Model tokens spent on stored assessments, by kind (input, output, cache_read, cache_write).",
    ["kind"],
)
ASSESSMENTS = Counter(
    "handoffs_assessments",
    "Assessments stored, by source (anthropic, offline), or given up (failed).",
    ["source"],
)
OUTBOX_DISPATCHED = Counter(
    "handoffs_outbox_dispatched",
    "Outbox rows handed to arq or the event bus, by path (fast: right after a commit; sweep).",
    ["path"],
)
OUTBOX_DISPATCH_ERRORS = Counter(
    "handoffs_outbox_dispatch_errors",
    "Dispatch batches rolled back because Redis failed; their rows stay pending for the sweep.",
    ["path"],
)
BATCH_ITEMS = Histogram(
    "handoffs_batch_items",
    "Jobs served by one group-committed statement, by statement.",
    ["statement"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 500),
)
EMAILS = Counter(
    "handoffs_emails",
    "Escalation email deliveries, by result (sent, failed, skipped: no SMTP_URL).",
    ["status"],
)
PSA_PUSHES = Counter(
    "handoffs_psa_pushes",
    "PSA write-backs, by vendor and result (synced, error, not_applicable).",
    ["vendor", "result"],
)
OPEN_STREAMS = Gauge(
    "handoffs_open_streams",
    "Live-stream (SSE) connections open on this replica.",
    multiprocess_mode="livesum",
)
OUTBOX_BACKLOG = Gauge(
    "handoffs_outbox_backlog",
    "Outbox rows not done, by status (pending, dispatched, failed), as counted at the scrape.",
    ["status"],
    multiprocess_mode="mostrecent",
)
