"""The outbox relay: turns committed outbox rows into arq jobs and live events.

Two paths feed it. Right after a request commits, the API hands the new row
ids to ``dispatch_soon`` (a background task: the response does not wait).
A periodic ``sweep`` (arq cron in every worker) picks up rows that a crash
left behind, and re-dispatches jobs that vanished without finishing.

Each batch is claimed with one ``UPDATE … RETURNING`` (the sweep's through
``FOR UPDATE SKIP LOCKED``), handed to Redis in one pipeline, and committed
only once Redis accepted it: if Redis fails, the transaction rolls back and
the rows stay pending for the sweep. The fast path and any number of
sweepers therefore never hand the same row on twice at the same time, and
``job id = outbox id`` makes a second enqueue of a job still queued or
finished a no-op (the same rule arq's own ``enqueue_job`` applies).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Table, any_, bindparam, case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handoffs import metrics
from handoffs.db.engine import UUID_ARRAY
from handoffs.db.models import OutboxMessage
from handoffs.enums import EVENT_TOPIC, OutboxStatus
from handoffs.events import EventBus
from handoffs.outbox.arq_enqueue import JobQueue

log = logging.getLogger(__name__)

#: The most outbox rows the fast path hands on in one UPDATE and one Redis round trip.
MAX_BATCH = 500

_OUTBOX: Table = OutboxMessage.__table__  # type: ignore[assignment]


class OutboxRelay:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: EventBus,
        jobs: JobQueue,
        *,
        stale_after: timedelta = timedelta(minutes=10),
        fast_path: bool = True,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.bus = bus
        self.jobs = jobs
        self.stale_after = stale_after
        self.fast_path = fast_path
        self._waiting: list[UUID] = []
        self._flusher: asyncio.Task[None] | None = None
        self.dispatched = 0
        self.batches = 0
        self.errors = 0

    # -- the fast path -------------------------------------------------------

    def dispatch_soon(self, ids: Iterable[UUID]) -> None:
        """Hand these freshly committed rows on in the background; never raises.

        One flusher task per process drains a shared buffer: while it is busy
        with a batch, the ids of concurrent requests gather for the next one,
        so under load one UPDATE and one Redis round trip serve many requests
        (group commit), and when idle a row goes out at once.
        """
        if not self.fast_path:
            return
        self._waiting.extend(ids)
        if self._waiting and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                await self.dispatch(batch)
            except Exception:
                # The rows stay pending and the sweep will pick them up; the requests already succeeded.
                log.exception(
                    "outbox fast-path dispatch failed for %d rows; the sweep will retry", len(batch)
                )

    @property
    def busy(self) -> bool:
        """Whether fast-path dispatches are waiting or running."""
        return bool(self._waiting) or (self._flusher is not None and not self._flusher.done())

    async def drain(self, wait_seconds: float = 5.0) -> None:
        """Wait for background dispatches (on shutdown)."""
        if self._flusher is not None and not self._flusher.done():
            await asyncio.wait({self._flusher}, timeout=wait_seconds)

    async def dispatch(self, ids: Sequence[UUID]) -> int:
        return await self._claim_and_send(
            (OutboxMessage.id == any_(bindparam("ids", list(ids), type_=UUID_ARRAY)))
            & (OutboxMessage.status == OutboxStatus.pending),
            path="fast",
        )

    # -- the sweep -----------------------------------------------------------

    async def sweep(self, *, grace: timedelta = timedelta(seconds=2), limit: int = 500) -> int:
        """Dispatch rows the fast path missed, and jobs that went stale; return how many."""
        now = datetime.now(UTC)
        due = (
            select(OutboxMessage.id)
            .where(
                or_(
                    (OutboxMessage.status == OutboxStatus.pending)
                    & (OutboxMessage.available_at <= now - grace),
                    (OutboxMessage.status == OutboxStatus.dispatched)
                    & (OutboxMessage.dispatched_at <= now - self.stale_after),
                )
            )
            .order_by(OutboxMessage.created_at, OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        handed_on = await self._claim_and_send(OutboxMessage.id.in_(due.scalar_subquery()), path="sweep")
        if handed_on:
            log.info("outbox sweep dispatched %d rows", handed_on)
        return handed_on

    # -- both ------------------------------------------------------------------

    async def _claim_and_send(self, which: ColumnElement[bool], *, path: str) -> int:
        now = datetime.now(UTC)
        is_event = OutboxMessage.topic == EVENT_TOPIC
        claim = (
            update(_OUTBOX)  # Core, not ORM-enabled: no session to synchronise, less per-batch work
            .where(which)
            .values(
                status=case((is_event, OutboxStatus.done.value), else_=OutboxStatus.dispatched.value),
                completed_at=case((is_event, now), else_=OutboxMessage.completed_at),
                dispatched_at=now,
                updated_at=now,
            )
            .returning(OutboxMessage.id, OutboxMessage.topic, OutboxMessage.payload, OutboxMessage.created_at)
        )
        async with self.sessionmaker() as db:
            rows = sorted((await db.execute(claim)).all(), key=lambda r: (r.created_at, r.id))
            if not rows:
                await db.commit()
                return 0
            try:
                await self._send(rows)
            except Exception as exc:
                await db.rollback()  # the rows stay as they were: the sweep retries them
                self.errors += 1
                metrics.OUTBOX_DISPATCH_ERRORS.labels(path).inc()
                await self._record_error([r.id for r in rows], exc)
                raise
            await db.commit()
        self.dispatched += len(rows)
        self.batches += 1
        metrics.OUTBOX_DISPATCHED.labels(path).inc(len(rows))
        return len(rows)

    async def _send(self, rows: Sequence[Any]) -> None:
        """Every job and event of the batch in one Redis round trip, in commit order."""
        async with self.bus.redis.pipeline(transaction=False) as pipe:
            for row in rows:
                if row.topic == EVENT_TOPIC:
                    await self.bus.publish_into(pipe, {**row.payload, "event_key": str(row.id)})
                else:
                    await self.jobs.enqueue_into(pipe, row.topic, row.id)
            await pipe.execute()

    async def _record_error(self, ids: list[UUID], exc: Exception) -> None:
        try:
            async with self.sessionmaker() as db:
                await db.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(ids))
                    .values(last_error=f"dispatch: {type(exc).__name__}: {exc}"[:2000])
                )
                await db.commit()
        except Exception:
            log.warning("could not record the dispatch error on %d outbox rows", len(ids))
