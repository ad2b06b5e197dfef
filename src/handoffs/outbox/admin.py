"""Running failed jobs again once their cause is fixed (an outage over, credentials corrected).

A job that gave up leaves its outbox row ``failed`` with the reason, and the
thing it worked on says so too (an assessment ``failed``, a PSA sync
``failed``, deliveries ``failed``). ``retry_failed`` puts both back to
pending, removes arq's kept result for the job id (arq refuses a job id
whose result it still keeps, for an hour), and hands the rows to the relay:
the jobs run again from their first attempt, with their usual idempotency.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from arq.constants import result_key_prefix
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handoffs.db.models import OutboxMessage, SessionHandoff
from handoffs.enums import EVENT_TOPIC, AssessmentStatus, JobTopic, OutboxStatus, PsaSyncStatus
from handoffs.outbox.relay import OutboxRelay


async def retry_failed(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis,
    relay: OutboxRelay,
    *,
    topic: str | None = None,
    limit: int = 500,
) -> list[tuple[UUID, str]]:
    """Re-run up to ``limit`` failed jobs (of ``topic``, or all); return their (outbox id, topic)."""
    now = datetime.now(UTC)
    which = select(OutboxMessage.id).where(
        OutboxMessage.status == OutboxStatus.failed, OutboxMessage.topic != EVENT_TOPIC
    )
    if topic is not None:
        which = which.where(OutboxMessage.topic == topic)
    which = which.order_by(OutboxMessage.created_at).limit(limit).with_for_update(skip_locked=True)
    async with sessionmaker() as db:
        rows = (
            await db.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(which.scalar_subquery()))
                .values(
                    status=OutboxStatus.pending,
                    attempts=0,
                    last_error=None,
                    available_at=now,
                    dispatched_at=None,
                    completed_at=None,
                    updated_at=now,
                )
                .returning(OutboxMessage.id, OutboxMessage.topic, OutboxMessage.payload)
                .execution_options(synchronize_session=False)
            )
        ).all()
        by_topic: dict[str, list[UUID]] = {}
        for row in rows:
            by_topic.setdefault(row.topic, []).append(UUID(row.payload["handoff_id"]))
        # The jobs check their own state before working: put that back to pending too.
        if handoffs := by_topic.get(JobTopic.enrich_escalation):
            await db.execute(
                update(SessionHandoff)
                .where(
                    SessionHandoff.id.in_(handoffs),
                    SessionHandoff.assessment_status == AssessmentStatus.failed,
                )
                .values(assessment_status=AssessmentStatus.pending, assessment_error=None, updated_at=now)
            )
        if handoffs := by_topic.get(JobTopic.push_to_psa):
            await db.execute(
                update(SessionHandoff)
                .where(
                    SessionHandoff.id.in_(handoffs), SessionHandoff.psa_sync_status == PsaSyncStatus.failed
                )
                .values(psa_sync_status=PsaSyncStatus.pending, psa_sync_error=None, updated_at=now)
            )
        # Email deliveries marked failed are claimed again by the job as they are.
        await db.commit()
    if not rows:
        return []
    await redis.delete(*(result_key_prefix + str(row.id) for row in rows))
    await relay.dispatch([row.id for row in rows])
    return [(row.id, row.topic) for row in rows]
