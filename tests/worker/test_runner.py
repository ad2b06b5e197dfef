"""The job runner's own edges: what happens before a job's body runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import pytest
from arq import Retry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.config import Settings
from handoffs.db.models import OutboxMessage
from handoffs.enums import OutboxStatus
from handoffs.jobs.context import CTX_KEY, JobContext
from handoffs.jobs.runner import OutboxJob, load_rows, run_outbox_job
from tests.conftest import Api, settle
from tests.support.workers import job_context

pytestmark = pytest.mark.usefixtures("clean_redis")


async def _enrichment_row(api: Api, db: AsyncSession) -> OutboxMessage:
    """A fresh escalation's enrich_escalation outbox row, handed to the relay."""
    session = await api.new_session("jane")
    await api.hand_off(session["id"])
    await settle(api.client)
    outbox = await db.scalar(select(OutboxMessage).where(OutboxMessage.topic == "enrich_escalation"))
    assert outbox is not None
    return outbox


async def test_a_job_whose_row_cannot_be_read_is_retried_until_its_last_attempt(
    api: Api, db: AsyncSession, settings: Settings, redis: Any
) -> None:
    outbox = await _enrichment_row(api, db)
    reads = 0

    async def read_after_a_restart(
        jc: JobContext, ids: Sequence[UUID]
    ) -> list[tuple[OutboxJob | None, None]]:
        nonlocal reads
        reads += 1
        if reads == 1:
            raise ConnectionError("the database restarted")
        return await load_rows(jc, ids)

    async def body(jc: JobContext, row: OutboxJob, attempt: int, extra: object) -> str:
        return f"ran {row.topic} on attempt {attempt}"

    async def give_up(jc: JobContext, row: OutboxJob, reason: str) -> None:
        raise AssertionError("nothing failed for good")

    async with job_context(settings, redis) as jc:
        ctx: dict[str, Any] = {CTX_KEY: jc, "job_try": 1}
        with pytest.raises(Retry):  # not a failure arq would keep for an hour
            await run_outbox_job(ctx, str(outbox.id), body, give_up, load=read_after_a_restart)
        ctx["job_try"] = 2
        assert (
            await run_outbox_job(ctx, str(outbox.id), body, give_up, load=read_after_a_restart)
            == "ran enrich_escalation on attempt 2"
        )
        await db.refresh(outbox)
        assert (outbox.status, outbox.attempts) == (OutboxStatus.done, 2)

        # On the last attempt the error goes to arq as it is: no endless retrying.
        reads = 0
        ctx["job_try"] = settings.job_max_attempts
        with pytest.raises(ConnectionError):
            await run_outbox_job(ctx, str(outbox.id), body, give_up, load=read_after_a_restart)


async def test_a_retry_is_not_lost_when_the_database_cannot_record_the_attempt(
    api: Api, db: AsyncSession, settings: Settings, redis: Any, dead_port: int
) -> None:
    from dataclasses import replace

    from handoffs.db.engine import create_engine, create_sessionmaker
    from handoffs.jobs.runner import TransientError

    outbox = await _enrichment_row(api, db)
    nowhere = create_engine(
        replace(settings, database_url=f"postgresql://nobody@127.0.0.1:{dead_port}/gone"), pre_ping=False
    )

    async def body(jc: JobContext, row: OutboxJob, attempt: int, extra: object) -> str:
        jc.sessionmaker = create_sessionmaker(nowhere)  # the database went away mid-job
        raise TransientError("the AI service is busy (529); will retry")

    async def give_up(jc: JobContext, row: OutboxJob, reason: str) -> None:
        raise AssertionError("nothing failed for good")

    try:
        async with job_context(settings, redis) as jc:
            with pytest.raises(Retry):
                await run_outbox_job({CTX_KEY: jc, "job_try": 1}, str(outbox.id), body, give_up)
    finally:
        await nowhere.dispose()
