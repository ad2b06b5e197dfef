"""``GET /metrics``: the Prometheus exposition of this replica, for a scraper holding ``METRICS_TOKEN``.

Without ``METRICS_TOKEN`` the endpoint answers 404: counters say how busy a
tenant base is, which is nobody's business but the operator's, and a reverse
proxy makes every client look local, so "loopback only" would not protect it.
The scraper sends ``Authorization: Bearer <METRICS_TOKEN>`` (compared in
constant time). The JWT middleware leaves ``/metrics`` alone (a public path):
the token here is not a user's.

At each scrape the outbox backlog is counted (one statement on the partial
index ``ix_outbox_open``); HTTP requests by route and status come from
Litestar's Prometheus middleware (``prometheus_config``), with route templates
as labels, never raw paths. Under ``handoffs serve --workers N`` every process
writes to ``PROMETHEUS_MULTIPROC_DIR`` and any of them answers for all.
"""

from __future__ import annotations

import hmac
import logging
import os
from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, NotFoundException
from litestar.plugins.prometheus import PrometheusConfig
from litestar.response import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from sqlalchemy import func, select

from handoffs import metrics
from handoffs.config import Settings
from handoffs.db.models import OutboxMessage
from handoffs.enums import OutboxStatus
from handoffs.runtime import Runtime
from handoffs.stream.controller import STREAM_PATH

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"

_BACKLOG = (
    select(OutboxMessage.status, func.count())
    .where(OutboxMessage.status != OutboxStatus.done)
    .group_by(OutboxMessage.status)
)


def prometheus_config() -> PrometheusConfig:
    """HTTP requests by method, route template and status (``handoffs_requests_total``, durations)."""
    return PrometheusConfig(
        app_name="handoffs",
        prefix="handoffs",
        group_path=True,
        # The live stream: a request's duration there is the connection's life, its middleware
        # wraps every event's send to every client (bench/README.md, "fanout"); open streams are
        # the handoffs_open_streams gauge.
        exclude=[METRICS_PATH, "/static", "/health", STREAM_PATH],
        exclude_unhandled_paths=True,
    )


def registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
        return collected
    return REGISTRY


class MetricsController(Controller):
    path = METRICS_PATH

    @get(include_in_schema=False)
    async def scrape(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        runtime: NamedDependency[Runtime],
    ) -> Response[bytes]:
        """The Prometheus text format of every handoffs metric."""
        expected = settings.metrics_token
        if not expected:
            raise NotFoundException()
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
            raise NotAuthorizedException("Send Authorization: Bearer <METRICS_TOKEN>.")
        try:
            async with runtime.system_engine.connect() as conn:  # every account's backlog
                counted = dict((await conn.execute(_BACKLOG)).tuples().all())
            for status in (OutboxStatus.pending, OutboxStatus.dispatched, OutboxStatus.failed):
                metrics.OUTBOX_BACKLOG.labels(status.value).set(counted.get(status, 0))
        except Exception as exc:  # the database away: serve what we have, say so in the log
            log.warning("metrics: could not count the outbox backlog: %s", type(exc).__name__)
        return Response(generate_latest(registry()), media_type=CONTENT_TYPE_LATEST)
