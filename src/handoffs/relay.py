"""The outbox relay: turns committed outbox rows into arq jobs and live events.

Two paths feed it. Right after a request commits, the API hands the new row
ids to ``dispatch_soon`` (a background task: the response does not wait).
A periodic ``sweep`` (arq cron in every worker) picks up rows that a crash
left behind, and re-dispatches jobs that vanished without finishing.

Rows are locked with ``FOR UPDATE SKIP LOCKED`` while they are handed on, so
the fast path and any number of sweepers never hand the same row on twice at
the same time; arq's ``_job_id = outbox id`` makes a second enqueue of a job
still queued or finished a no-op.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol
from uuid import UUID

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handoffs.enums import OutboxStatus
from handoffs.events import EventBus
from handoffs.models import OutboxMessage
from handoffs.outbox import Topic

log = logging.getLogger(__name__)


class JobQueue(Protocol):
    """The one seam through which jobs are enqueued (arq in production)."""

    async def enqueue(self, function: str, outbox_id: UUID) -> None: ...


class ArqJobQueue:
    def __init__(self, arq_redis: object) -> None:
        self._arq = arq_redis

    async def enqueue(self, function: str, outbox_id: UUID) -> None:
        # job id = outbox id: arq refuses a duplicate while the job or its result exists.
        await self._arq.enqueue_job(function, str(outbox_id), _job_id=str(outbox_id))  # type: ignore[attr-defined]


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
        self._tasks: set[asyncio.Task[None]] = set()
        self.dispatched = 0
        self.errors = 0

    # -- the fast path -------------------------------------------------------

    def dispatch_soon(self, ids: Iterable[UUID]) -> None:
        """Hand these freshly committed rows on in the background; never raises."""
        ids = list(ids)
        if not ids or not self.fast_path:
            return
        task = asyncio.get_running_loop().create_task(self._dispatch_logged(ids))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch_logged(self, ids: list[UUID]) -> None:
        try:
            await self.dispatch(ids)
        except Exception:
            # The sweep will pick these rows up; the request already succeeded.
            self.errors += 1
            log.exception("outbox fast-path dispatch failed for %d rows; the sweep will retry", len(ids))

    @property
    def busy(self) -> bool:
        """Whether fast-path dispatches are still running."""
        return bool(self._tasks)

    async def drain(self, wait_seconds: float = 5.0) -> None:
        """Wait for background dispatches (on shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=wait_seconds)

    async def dispatch(self, ids: Sequence[UUID]) -> int:
        async with self.sessionmaker() as db:
            rows = (
                await db.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.id.in_(ids), OutboxMessage.status == OutboxStatus.pending)
                    .order_by(OutboxMessage.created_at, OutboxMessage.id)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            return await self._hand_on(db, rows)

    # -- the sweep -----------------------------------------------------------

    async def sweep(self, *, grace: timedelta = timedelta(seconds=2), limit: int = 500) -> int:
        """Dispatch rows the fast path missed, and jobs that went stale; return how many."""
        now = datetime.now(UTC)
        async with self.sessionmaker() as db:
            rows = (
                await db.scalars(
                    select(OutboxMessage)
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
            ).all()
            if rows:
                log.info("outbox sweep found %d rows to dispatch", len(rows))
            return await self._hand_on(db, rows)

    async def _hand_on(self, db: AsyncSession, rows: Sequence[OutboxMessage]) -> int:
        now = datetime.now(UTC)
        done = 0
        for row in rows:
            try:
                if row.topic == Topic.event:
                    await self.bus.publish({**row.payload, "event_key": str(row.id)})
                    row.status = OutboxStatus.done
                    row.completed_at = now
                else:
                    await self.jobs.enqueue(row.topic, row.id)
                    row.status = OutboxStatus.dispatched
                row.dispatched_at = now
                done += 1
            except Exception as exc:
                row.last_error = f"dispatch: {type(exc).__name__}: {exc}"[:2000]
                self.errors += 1
                log.warning("could not dispatch outbox row %s (%s): %s", row.id, row.topic, exc)
        await db.commit()
        self.dispatched += done
        return done
