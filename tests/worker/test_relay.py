"""The outbox relay: claim, hand on in one Redis round trip, roll back when Redis is away, sweep."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handoffs.db.models import OutboxMessage
from handoffs.enums import OutboxStatus
from handoffs.events import EventBus
from handoffs.outbox.arq_enqueue import ArqJobQueue
from handoffs.outbox.relay import OutboxRelay
from tests.conftest import Api, settle

pytestmark = pytest.mark.usefixtures("clean_redis")


def _relay(sessionmaker: async_sessionmaker[AsyncSession], redis: Redis, **kwargs: Any) -> OutboxRelay:
    return OutboxRelay(sessionmaker, EventBus(redis), ArqJobQueue(redis), **kwargs)


async def _rows(db: AsyncSession) -> dict[str, OutboxMessage]:
    db.expire_all()
    return {r.topic: r for r in (await db.scalars(select(OutboxMessage))).all()}


async def _escalate_without_fast_path(api: Api, db: AsyncSession) -> None:
    session = await api.new_session("jane", psa_ticket_id="55")
    await api.hand_off(session["id"])
    await settle(api.client)
    # Put the rows back as a crash before dispatch would have left them.
    await db.execute(
        update(OutboxMessage).values(status=OutboxStatus.pending, dispatched_at=None, completed_at=None)
    )
    await db.commit()


async def test_dispatch_enqueues_jobs_under_the_row_id_and_publishes_events(
    api: Api, db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    await _escalate_without_fast_path(api, db)
    await redis.flushdb()
    relay = _relay(sessionmaker, redis)
    rows = await _rows(db)
    assert await relay.dispatch([r.id for r in rows.values()]) == 5
    rows = await _rows(db)
    assert rows["event"].status == OutboxStatus.done
    for topic in ("enrich_escalation", "send_escalation_emails", "push_to_psa", "post_to_chat"):
        assert rows[topic].status == OutboxStatus.dispatched
        assert await redis.exists(f"arq:job:{rows[topic].id}")
    assert await redis.zcard("arq:queue") == 4
    history = await EventBus(redis).history_after(api["jane"].account_id, "0-0")
    assert history is not None
    assert [e.type for e in history] == ["handoff_created"]
    # A second dispatch of the same ids finds nothing pending.
    assert await relay.dispatch([r.id for r in rows.values()]) == 0


async def test_when_redis_is_away_rows_stay_pending_with_the_error_and_the_sweep_sends_them(
    api: Api,
    db: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis,
    dead_port: int,
) -> None:
    await _escalate_without_fast_path(api, db)
    await redis.flushdb()
    dead = Redis(host="127.0.0.1", port=dead_port, socket_connect_timeout=0.5)
    with pytest.raises(ConnectionError):
        await _relay(sessionmaker, dead).dispatch([r.id for r in (await _rows(db)).values()])
    rows = await _rows(db)
    assert {r.status for r in rows.values()} == {OutboxStatus.pending}
    assert all((r.last_error or "").startswith("dispatch: ConnectionError") for r in rows.values())

    swept = await _relay(sessionmaker, redis).sweep(grace=timedelta(0))
    assert swept == 5
    assert await redis.zcard("arq:queue") == 4
    await dead.aclose()


async def test_the_sweep_redispatches_a_lost_job_and_arq_ids_keep_it_single(
    api: Api, db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    session = await api.new_session("jane")
    await api.hand_off(session["id"])
    await settle(api.client)
    relay = _relay(sessionmaker, redis, stale_after=timedelta(0))
    # The jobs are still queued: re-dispatching them adds nothing to the queue.
    queued = await redis.zcard("arq:queue")
    assert queued == 3  # the assessment, the emails, the chat message (no ticket: no PSA push)
    assert await relay.sweep(grace=timedelta(0)) == 3
    assert await redis.zcard("arq:queue") == queued
    # Lost (Redis flushed): the sweep queues them again.
    await redis.flushdb()
    assert await relay.sweep(grace=timedelta(0)) == 3
    assert await redis.zcard("arq:queue") == 3


async def test_fresh_pending_rows_wait_for_the_fast_path(
    api: Api, db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    await _escalate_without_fast_path(api, db)
    assert await _relay(sessionmaker, redis).sweep(grace=timedelta(minutes=5)) == 0
