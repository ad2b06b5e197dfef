"""Running an outbox row as an arq job: idempotent, attempt-based retries, a recorded outcome.

arq semantics we design for: only ``Retry`` re-runs a job; a job lost with a
killed worker runs again once its timeout has passed; ``job_try`` counts
attempts. So every job may run more than once, and each checks what it
already did before doing anything.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import Token
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from arq import Retry
from sqlalchemy import Row, any_, bindparam, select, update
from structlog.contextvars import bind_contextvars, reset_contextvars

from handoffs import metrics
from handoffs.db.engine import UUID_ARRAY
from handoffs.db.models import OutboxMessage
from handoffs.enums import OutboxStatus
from handoffs.jobs.context import JobContext, job_context

log = logging.getLogger(__name__)


class TransientError(Exception):
    """Worth another try later (rate limit, overload, 5xx, timeout, connection).

    ``defer``, when the other side said when to come back (a 429's ``Retry-After``),
    replaces the backoff for the next attempt.
    """

    def __init__(self, reason: str, *, max_attempts: int | None = None, defer: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.max_attempts = max_attempts
        self.defer = defer


class PermanentError(Exception):
    """Trying again cannot help (bad credentials, a rejected request)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter: attempt 1 waits up to base, 2 up to 2*base, …"""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class DoneAlready:
    """A job's outcome when its own last transaction also marked its outbox row done
    (the enrichment's batched write), so the runner must not record it again."""

    summary: str


@dataclass(frozen=True, slots=True)
class OutboxJob:
    """The outbox row a job runs for, as read at its start."""

    id: UUID
    topic: str
    account_id: UUID
    payload: dict[str, Any]
    status: OutboxStatus

    #: The columns to select for ``from_row``.
    COLUMNS = (
        OutboxMessage.id,
        OutboxMessage.topic,
        OutboxMessage.account_id,
        OutboxMessage.payload,
        OutboxMessage.status,
    )

    @classmethod
    def from_row(cls, row: Row[Any]) -> OutboxJob:
        return cls(row.id, row.topic, row.account_id, row.payload, row.status)


JobBody = Callable[[JobContext, OutboxJob, int, Any], Awaitable[str | DoneAlready]]
"""A job: its context, its outbox row, the attempt (1, 2, …) and what ``load`` read for it."""
GiveUp = Callable[[JobContext, OutboxJob, str], Awaitable[None]]
Loader = Callable[[JobContext, Sequence[UUID]], Awaitable[Sequence[tuple[OutboxJob | None, Any]]]]
"""Reads many jobs' outbox rows, and whatever else each job needs, in one round trip."""

#: ``WHERE outbox.id = ANY(:ids)``: one statement text for any batch size.
BATCH_IDS = bindparam("ids", type_=UUID_ARRAY)
_LOAD_ROWS = select(*OutboxJob.COLUMNS).where(OutboxMessage.id == any_(BATCH_IDS))


async def load_rows(jc: JobContext, ids: Sequence[UUID]) -> list[tuple[OutboxJob | None, None]]:
    async with jc.engine.connect() as conn:
        found = {row.id: OutboxJob.from_row(row) for row in await conn.execute(_LOAD_ROWS, {"ids": ids})}
    return [(found.get(outbox_id), None) for outbox_id in ids]


async def run_outbox_job(
    ctx: dict[str, Any], outbox_id: str, body: JobBody, give_up: GiveUp, load: Loader = load_rows
) -> str:
    """Run ``body`` for the outbox row; record done/failed; raise ``Retry`` for transient errors.

    ``load`` reads the row, and whatever else the job needs; concurrent jobs
    share one call of it (``JobContext.coalesced``). The body receives that
    extra as its last argument.
    """
    started = time.perf_counter()
    seen = _Seen()
    try:
        return await _run(
            job_context(ctx), int(ctx.get("job_try", 1)), UUID(outbox_id), body, give_up, load, seen
        )
    except Retry:
        seen.outcome = "retry"
        raise
    except BaseException:
        seen.outcome = "error"  # cancelled at its timeout, or the worker is shutting down
        raise
    finally:
        reset_contextvars(**seen.bound)
        metrics.JOBS.labels(seen.topic, seen.outcome).inc()
        metrics.JOB_SECONDS.labels(seen.topic).observe(time.perf_counter() - started)


@dataclass(slots=True)
class _Seen:
    """What the metrics say of an attempt, and what its log lines are bound to (``function``)."""

    topic: str = "unknown"
    outcome: str = "done"
    bound: Mapping[str, Token[Any]] = field(default_factory=dict)


async def _run(
    jc: JobContext, attempt: int, outbox_id: UUID, body: JobBody, give_up: GiveUp, load: Loader, seen: _Seen
) -> str:
    try:
        row, extra = await jc.coalesced(load)(outbox_id)
    except Exception as exc:
        # The database is away (a restart, a failover): nothing can be recorded, so retry with
        # backoff. Letting arq fail the job would keep its result and block this id for an hour.
        if attempt >= jc.settings.job_max_attempts:
            raise
        log.warning("outbox row %s: could not be read on attempt %d (%r); retrying", outbox_id, attempt, exc)
        raise Retry(defer=_backoff(jc, attempt)) from exc
    if row is None:
        seen.outcome = "gone"
        return "outbox row is gone"
    seen.topic = row.topic
    # With the job's id (bound by the worker's on_job_start): LOG_FORMAT=json lines name both.
    seen.bound = bind_contextvars(function=row.topic)
    if row.status in (OutboxStatus.done, OutboxStatus.failed):
        seen.outcome = "duplicate"
        return f"already {row.status.value}"
    try:
        try:
            outcome = await body(jc, row, attempt, extra)
        except (TransientError, PermanentError):
            raise
        except Exception as exc:
            # Unforeseen (a pool timeout, a database restart): retry it like a
            # transient error rather than let arq fail the job and keep that
            # result, which would block a re-dispatch of this id for an hour.
            log.exception("%s %s: unexpected error on attempt %d", row.topic, row.id, attempt)
            # The reason reaches people (psa_sync_error, the timeline): the class, never the message,
            # which may quote a driver's or a vendor's words; the log above has the whole error.
            raise TransientError(
                f"an unexpected error ({type(exc).__name__}); the worker's log has it"
            ) from exc
    except TransientError as exc:
        limit = min(exc.max_attempts or jc.settings.job_max_attempts, jc.settings.job_max_attempts)
        if attempt < limit:
            defer = exc.defer if exc.defer is not None else _backoff(jc, attempt)
            try:
                await _record(jc, row.id, attempt, error=exc.reason)
            except Exception as record_exc:  # the database may be why it failed: retry all the same
                log.warning("%s %s: could not record attempt %d: %r", row.topic, row.id, attempt, record_exc)
            log.info(
                "%s %s: attempt %d failed (%s); retrying in %.1fs",
                row.topic,
                row.id,
                attempt,
                exc.reason,
                defer,
            )
            raise Retry(defer=defer) from exc
        seen.outcome = "failed"
        return await _fail(jc, row, attempt, f"gave up after {attempt} attempts: {exc.reason}", give_up)
    except PermanentError as exc:
        seen.outcome = "failed"
        return await _fail(jc, row, attempt, exc.reason, give_up)
    if isinstance(outcome, DoneAlready):
        return outcome.summary
    await _record(jc, row.id, attempt, status=OutboxStatus.done)
    return outcome


def _backoff(jc: JobContext, attempt: int) -> float:
    return backoff_seconds(attempt, jc.settings.job_retry_base_seconds, jc.settings.job_retry_cap_seconds)


async def _fail(jc: JobContext, row: OutboxJob, attempt: int, reason: str, give_up: GiveUp) -> str:
    log.warning("%s %s failed for good: %s", row.topic, row.id, reason)
    await give_up(jc, row, reason)
    await _record(jc, row.id, attempt, status=OutboxStatus.failed, error=reason)
    return f"failed: {reason}"


async def _record(
    jc: JobContext,
    row_id: UUID,
    attempt: int,
    *,
    status: OutboxStatus | None = None,
    error: str | None = None,
) -> None:
    values: dict[str, Any] = {"attempts": attempt, "updated_at": datetime.now(UTC)}
    if error is not None:
        values["last_error"] = error[:4000]
    if status is not None:
        values["status"] = status
        values["completed_at"] = datetime.now(UTC)
    async with jc.sessionmaker() as db:
        await db.execute(update(OutboxMessage).where(OutboxMessage.id == row_id).values(**values))
        await db.commit()
