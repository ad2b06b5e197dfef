"""Job: the AI assessment and escalation package of an escalation."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import anthropic
from sqlalchemy import any_, select, text, update
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from uuid_utils.compat import uuid7

from handoffs import metrics
from handoffs.db.models import OutboxMessage, SessionHandoff, User
from handoffs.domain.handoffs.timeline import record
from handoffs.enums import EVENT_TOPIC, AssessmentStatus, TimelineKind
from handoffs.events import HandoffAssessmentFailed, HandoffAssessmentReady, event_payload
from handoffs.integrations.ai import AssessmentInput, InvalidModelOutput
from handoffs.jobs.context import JobContext
from handoffs.jobs.runner import (
    BATCH_IDS,
    DoneAlready,
    OutboxJob,
    PermanentError,
    TransientError,
    run_outbox_job,
)
from handoffs.outbox.writer import OutboxWriter

log = logging.getLogger(__name__)

#: Invalid model output is retried once, then stored as failed.
INVALID_OUTPUT_ATTEMPTS = 2


async def enrich_escalation(ctx: dict[str, Any], outbox_id: str) -> str:
    return await run_outbox_job(ctx, outbox_id, _enrich, _give_up, load=_load)


_HANDOFF_ID = OutboxMessage.payload["handoff_id"].astext.cast(PG_UUID(as_uuid=True))
_LOAD = (
    select(
        *OutboxJob.COLUMNS,
        SessionHandoff.assessment_status,
        SessionHandoff.session_snapshot,
        SessionHandoff.engineer_notes,
        User.name.label("creator_name"),
    )
    .outerjoin(SessionHandoff, SessionHandoff.id == _HANDOFF_ID)
    .outerjoin(User, User.id == SessionHandoff.created_by)
    .where(OutboxMessage.id == any_(BATCH_IDS))
)


async def _load(jc: JobContext, ids: Sequence[UUID]) -> list[tuple[OutboxJob | None, AssessmentInput | None]]:
    """Outbox rows and the model's input in one read; no input once the assessment is stored or given up."""
    found: dict[UUID, tuple[OutboxJob, AssessmentInput | None]] = {}
    async with jc.engine.connect() as conn:
        for r in await conn.execute(_LOAD, {"ids": ids}):
            data = None
            # Gone, or already stored (or given up): never call the model twice.
            if r.assessment_status == AssessmentStatus.pending:
                data = AssessmentInput.from_snapshot(r.session_snapshot, r.engineer_notes, r.creator_name)
            found[r.id] = (OutboxJob.from_row(r), data)
    return [found.get(outbox_id, (None, None)) for outbox_id in ids]


async def _enrich(
    jc: JobContext, row: OutboxJob, attempt: int, data: AssessmentInput | None
) -> str | DoneAlready:
    handoff_id = UUID(row.payload["handoff_id"])
    if data is None:
        return "nothing to do: assessment already stored or handoff gone"
    # No database connection is held while the model thinks.
    try:
        result = await jc.assessor.assess(data)
    except InvalidModelOutput as exc:
        raise TransientError(str(exc), max_attempts=INVALID_OUTPUT_ATTEMPTS) from exc
    except (anthropic.RateLimitError, anthropic.InternalServerError) as exc:
        raise TransientError(f"the AI service is busy ({exc.status_code}); will retry") from exc
    except anthropic.APIConnectionError as exc:  # includes timeouts
        raise TransientError(f"could not reach the AI service: {type(exc).__name__}") from exc
    except anthropic.APIStatusError as exc:
        raise PermanentError(
            f"the AI service refused the request ({exc.status_code}): {exc.message}"
        ) from exc
    assessment = result.assessment_json()
    event_id = uuid7()
    stored = await jc.coalesced(_store)(
        _Stored(
            handoff_id=handoff_id,
            assessment=json.dumps(assessment),
            model=result.model,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cache_read_tokens=result.cache_read_tokens,
            package=json.dumps(result.package_json()),
            event_id=event_id,
            timeline_id=uuid7(),
            timeline_detail=json.dumps({"source": result.source, "model": result.model}),
            account_id=row.account_id,
            event=json.dumps(
                event_payload(
                    HandoffAssessmentReady(
                        handoff_id=str(handoff_id),
                        session_id=str(row.payload["session_id"]),
                        account_id=str(row.account_id),
                        assessment=assessment,
                    )
                )
            ),
            outbox_id=row.id,
            attempt=attempt,
        )
    )
    if not stored:
        return DoneAlready("another run stored the assessment first")
    metrics.ASSESSMENTS.labels(result.source).inc()
    metrics.AI_TOKENS.labels("input").inc(result.input_tokens)
    metrics.AI_TOKENS.labels("output").inc(result.output_tokens)
    metrics.AI_TOKENS.labels("cache_read").inc(result.cache_read_tokens)
    log.info(
        "assessment ready for handoff %s (%s, %d in / %d out tokens)",
        handoff_id, result.source, result.input_tokens, result.output_tokens,
    )  # fmt: skip
    return DoneAlready(f"assessment ready ({result.source})")


@dataclass(frozen=True, slots=True)
class _Stored:
    """One job's result, as the parameters of one row of ``_STORE``."""

    handoff_id: UUID
    assessment: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    package: str
    event_id: UUID
    timeline_id: UUID
    timeline_detail: str
    account_id: UUID
    event: str
    outbox_id: UUID
    attempt: int


#: Storing assessments is one fixed-shape statement for any number of jobs
#: (their results come as arrays): each result on its handoff (only while
#: still pending, so two racing runs store one), the package on the session
#: (the newest handoff's, should one batch hold two of a session), a
#: ``handoff_assessment_ready`` event in the outbox and an ``assessment_ready``
#: timeline entry per stored result, and every job's own outbox row marked
#: done, in one round trip.
_STORE = text(
    """
WITH input AS (
    SELECT * FROM unnest(
        CAST(:handoff_id AS uuid[]), CAST(:assessment AS text[]), CAST(:model AS text[]),
        CAST(:input_tokens AS int[]), CAST(:output_tokens AS int[]), CAST(:cache_read_tokens AS int[]),
        CAST(:package AS text[]), CAST(:event_id AS uuid[]), CAST(:timeline_id AS uuid[]),
        CAST(:timeline_detail AS text[]), CAST(:account_id AS uuid[]),
        CAST(:event AS text[]), CAST(:outbox_id AS uuid[]), CAST(:attempt AS int[])
    ) AS i(handoff_id, assessment, model, input_tokens, output_tokens, cache_read_tokens,
           package, event_id, timeline_id, timeline_detail, account_id, event, outbox_id, attempt)
), stored AS (
    UPDATE session_handoffs h
    SET ai_assessment = CAST(i.assessment AS jsonb), assessment_status = 'ready', assessment_error = NULL,
        ai_model = i.model, ai_input_tokens = h.ai_input_tokens + i.input_tokens,
        ai_output_tokens = h.ai_output_tokens + i.output_tokens,
        ai_cache_read_tokens = h.ai_cache_read_tokens + i.cache_read_tokens, updated_at = :now
    FROM input i
    WHERE h.id = i.handoff_id AND h.assessment_status = 'pending'
    RETURNING h.id AS handoff_id, h.session_id, i.package, i.event_id, i.account_id, i.event,
        i.timeline_id, i.timeline_detail
), packaged AS (
    UPDATE ai_sessions s SET escalation_package = CAST(p.package AS jsonb), updated_at = :now
    FROM (
        SELECT DISTINCT ON (session_id) session_id, package FROM stored ORDER BY session_id, handoff_id DESC
    ) p
    WHERE s.id = p.session_id
), announced AS (
    INSERT INTO outbox (id, account_id, topic, payload, status, attempts, created_at, updated_at)
    SELECT event_id, account_id, :event_topic, CAST(event AS jsonb), 'pending', 0, :now, :now FROM stored
), recorded AS (
    INSERT INTO handoff_timeline (id, account_id, handoff_id, kind, actor_id, detail, created_at, updated_at)
    SELECT timeline_id, account_id, handoff_id, 'assessment_ready', NULL, CAST(timeline_detail AS jsonb), :now, :now
    FROM stored
), finished AS (
    UPDATE outbox o SET status = 'done', attempts = i.attempt, completed_at = :now, updated_at = :now
    FROM input i
    WHERE o.id = i.outbox_id
)
SELECT event_id FROM stored
"""
)
_STORED_FIELDS = _Stored.__slots__


async def _store(jc: JobContext, results: Sequence[_Stored]) -> list[bool]:
    """Store the results of concurrent jobs; for each, whether it was stored (not raced by another run)."""
    params: dict[str, Any] = {name: [getattr(r, name) for r in results] for name in _STORED_FIELDS}
    params["now"] = datetime.now(UTC)
    params["event_topic"] = EVENT_TOPIC
    async with jc.engine.begin() as conn:
        announced = set((await conn.execute(_STORE, params)).scalars())
    jc.relay.dispatch_soon(announced)
    return [r.event_id in announced for r in results]


async def _give_up(jc: JobContext, row: OutboxJob, reason: str) -> None:
    handoff_id = UUID(row.payload["handoff_id"])
    async with jc.sessionmaker() as db:
        outbox = OutboxWriter(db, jc.relay)
        session_id = await db.scalar(
            update(SessionHandoff)
            .where(
                SessionHandoff.id == handoff_id, SessionHandoff.assessment_status == AssessmentStatus.pending
            )
            .values(
                assessment_status=AssessmentStatus.failed,
                assessment_error=f"The AI assessment could not be made: {reason}",
                updated_at=datetime.now(UTC),
            )
            .returning(SessionHandoff.session_id)
        )
        if session_id is not None:
            metrics.ASSESSMENTS.labels("failed").inc()
            await record(
                db, account_id=row.account_id, handoff_id=handoff_id, kind=TimelineKind.assessment_failed,
                actor_id=None, detail={"reason": reason[:500]},
            )  # fmt: skip
            outbox.add(
                row.account_id,
                EVENT_TOPIC,
                event_payload(
                    HandoffAssessmentFailed(
                        handoff_id=str(handoff_id),
                        session_id=str(session_id),
                        account_id=str(row.account_id),
                        reason=reason,
                    )
                ),
            )
        await outbox.commit()
