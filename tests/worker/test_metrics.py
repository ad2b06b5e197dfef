"""The metrics hooks: what a worker records in prometheus_client's registry as jobs run."""

from __future__ import annotations

from typing import Any

import pytest
from arq.connections import ArqRedis
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.config import Settings
from handoffs.db.models import OutboxMessage
from tests.conftest import Api, settle
from tests.support.fake_anthropic import FlakyOnceAssessor
from tests.support.workers import fast_settings, run_jobs

pytestmark = pytest.mark.usefixtures("clean_redis")


class Counts:
    """Prometheus samples now, to compare with later (other tests in this process also count)."""

    def __init__(self, *keys: tuple[str, dict[str, str]]) -> None:
        self.keys = keys
        self.before = [self._value(name, labels) for name, labels in keys]

    @staticmethod
    def _value(name: str, labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    def delta(self) -> list[float]:
        return [self._value(n, labels) - b for (n, labels), b in zip(self.keys, self.before, strict=True)]


def job(function: str, outcome: str) -> tuple[str, dict[str, str]]:
    return "handoffs_jobs_total", {"function": function, "outcome": outcome}


async def test_a_handoffs_jobs_are_counted_timed_and_their_results_recorded(
    api: Api, settings: Settings
) -> None:
    # A linked ticket, and no PSA configured for Acme: the push job runs and finds nothing to do.
    session = await api.new_session("jane", psa_ticket_id="4711")
    # Read the counters before the hand-off: its fast-path dispatch may run before the next line.
    counts = Counts(
        ("handoffs_outbox_dispatched_total", {"path": "fast"}),
        job("enrich_escalation", "done"),
        job("send_escalation_emails", "done"),
        job("push_to_psa", "done"),
        ("handoffs_job_duration_seconds_count", {"function": "enrich_escalation"}),
        ("handoffs_assessments_total", {"source": "offline"}),
        ("handoffs_emails_total", {"status": "skipped"}),
        ("handoffs_psa_pushes_total", {"vendor": "none", "result": "not_applicable"}),
        ("handoffs_batch_items_count", {"statement": "enrichment.load"}),
        ("handoffs_batch_items_sum", {"statement": "enrichment.store"}),
    )
    await api.hand_off(session["id"])
    await settle(api.client)
    await run_jobs(fast_settings(settings, anthropic_api_key=None, smtp_url=None))
    dispatched, *rest = counts.delta()
    assert dispatched >= 4  # the four job rows (assessment, emails, PSA, chat) and the event
    # Emails: one skipped delivery per recipient (Acme's active engineers, admins and owners but Jane).
    assert rest == [1, 1, 1, 1, 1, 3, 1, 1, 1]


@pytest.mark.expect_error_logs  # an unexpected job error, on purpose: logged with its traceback
async def test_retries_duplicates_and_give_ups_are_counted_apart(
    api: Api, db: AsyncSession, settings: Settings, redis: Any
) -> None:
    session = await api.new_session("jane")
    await api.hand_off(session["id"])
    await settle(api.client)
    counts = Counts(
        job("enrich_escalation", "retry"),
        job("enrich_escalation", "done"),
        job("enrich_escalation", "duplicate"),
    )
    await run_jobs(fast_settings(settings), extra_ctx={"assessor": FlakyOnceAssessor()})
    outbox = await db.scalar(select(OutboxMessage).where(OutboxMessage.topic == "enrich_escalation"))
    assert outbox is not None
    arq = ArqRedis(connection_pool=redis.connection_pool)
    await arq.enqueue_job("enrich_escalation", str(outbox.id), _job_id=f"again-{outbox.id}")
    await run_jobs(fast_settings(settings))
    assert counts.delta() == [1, 1, 1]
