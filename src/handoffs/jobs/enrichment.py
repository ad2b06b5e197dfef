"""Job: the AI assessment and escalation package of an escalation."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import anthropic
from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from handoffs.ai import AssessmentInput, AssessmentResult, InvalidModelOutput
from handoffs.enums import AssessmentStatus
from handoffs.jobs.context import JobContext
from handoffs.jobs.runner import PermanentError, Recorded, TransientError, run_outbox_job
from handoffs.models import OutboxMessage, SessionHandoff, User
from handoffs.outbox import OutboxWriter, Topic

log = logging.getLogger(__name__)

#: Invalid model output is retried once, then stored as failed.
INVALID_OUTPUT_ATTEMPTS = 2


async def enrich_escalation(ctx: dict[str, Any], outbox_id: str) -> str:
    return await run_outbox_job(ctx, outbox_id, _enrich, _give_up, load=_load)


async def _load(db: AsyncSession, outbox_id: UUID) -> tuple[OutboxMessage | None, AssessmentInput | None]:
    """The outbox row and the model's input in one read; no input once the assessment is stored or given up."""
    handoff_id = OutboxMessage.payload["handoff_id"].astext.cast(PG_UUID(as_uuid=True))
    found = (
        await db.execute(
            select(OutboxMessage, SessionHandoff, User.name)
            .outerjoin(SessionHandoff, SessionHandoff.id == handoff_id)
            .outerjoin(User, User.id == SessionHandoff.created_by)
            .where(OutboxMessage.id == outbox_id)
        )
    ).first()
    if found is None:
        return None, None
    row, handoff, creator_name = found
    if handoff is None or handoff.assessment_status != AssessmentStatus.pending:
        return row, None  # gone, or already stored (or given up): never call the model twice
    return row, AssessmentInput.from_snapshot(handoff.session_snapshot, handoff.engineer_notes, creator_name)


async def _enrich(jc: JobContext, row: OutboxMessage, attempt: int, data: AssessmentInput | None) -> str:
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
    return await _store(jc, row, attempt, handoff_id, result)


#: Storing an assessment is one fixed-shape statement: the result on the
#: handoff (only while still pending, so two racing runs store one), the
#: package on the session, the ``handoff_assessment_ready`` event in the
#: outbox, and this job's outbox row marked done, all in one round trip.
_STORE = text(
    """
WITH stored AS (
    UPDATE session_handoffs
    SET ai_assessment = CAST(:assessment AS jsonb), assessment_status = 'ready', assessment_error = NULL,
        ai_model = :model, ai_input_tokens = ai_input_tokens + :input_tokens,
        ai_output_tokens = ai_output_tokens + :output_tokens,
        ai_cache_read_tokens = ai_cache_read_tokens + :cache_read_tokens, updated_at = :now
    WHERE id = :handoff_id AND assessment_status = 'pending'
    RETURNING session_id
), packaged AS (
    UPDATE ai_sessions SET escalation_package = CAST(:package AS jsonb), updated_at = :now
    WHERE id IN (SELECT session_id FROM stored)
), announced AS (
    INSERT INTO outbox (id, account_id, topic, payload, status, attempts, created_at, updated_at)
    SELECT :event_id, :account_id, 'event', CAST(:event AS jsonb), 'pending', 0, :now, :now FROM stored
), finished AS (
    UPDATE outbox SET status = 'done', attempts = :attempt, completed_at = :now, updated_at = :now
    WHERE id = :outbox_id
)
SELECT count(*) FROM stored
"""
)


async def _store(
    jc: JobContext, row: OutboxMessage, attempt: int, handoff_id: UUID, result: AssessmentResult
) -> str:
    now = datetime.now(UTC)
    event_id = uuid7()
    assessment = result.assessment_json()
    event = {
        "type": "handoff_assessment_ready",
        "handoff_id": str(handoff_id),
        "session_id": str(row.payload["session_id"]),
        "account_id": str(row.account_id),
        "assessment": assessment,
    }
    async with jc.sessionmaker() as db:
        stored = await db.scalar(
            _STORE,
            {
                "handoff_id": handoff_id,
                "assessment": json.dumps(assessment),
                "model": result.model,
                "input_tokens": result.input_tokens,
                "output_tokens": result.output_tokens,
                "cache_read_tokens": result.cache_read_tokens,
                "package": json.dumps(result.package_json()),
                "event_id": event_id,
                "account_id": row.account_id,
                "event": json.dumps(event),
                "outbox_id": row.id,
                "attempt": attempt,
                "now": now,
            },
        )
        await db.commit()
    if not stored:
        return Recorded("another run stored the assessment first")
    jc.relay.dispatch_soon([event_id])
    log.info(
        "assessment ready for handoff %s (%s, %d in / %d out tokens)",
        handoff_id, result.source, result.input_tokens, result.output_tokens,
    )  # fmt: skip
    return Recorded(f"assessment ready ({result.source})")


async def _give_up(jc: JobContext, row: OutboxMessage, reason: str) -> None:
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
            outbox.add(
                row.account_id,
                Topic.event,
                {
                    "type": "handoff_assessment_failed",
                    "handoff_id": str(handoff_id),
                    "session_id": str(session_id),
                    "account_id": str(row.account_id),
                    "reason": reason,
                },
            )
        await outbox.commit()
