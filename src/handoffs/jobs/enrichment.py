"""Job: the AI assessment and escalation package of an escalation."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import anthropic
from sqlalchemy import select, update

from handoffs.ai import AssessmentInput, AssessmentResult, InvalidModelOutput
from handoffs.enums import AssessmentStatus
from handoffs.jobs.context import JobContext
from handoffs.jobs.runner import PermanentError, Recorded, TransientError, mark_done, run_outbox_job
from handoffs.models import AISession, OutboxMessage, SessionHandoff, User
from handoffs.outbox import OutboxWriter, Topic

log = logging.getLogger(__name__)

#: Invalid model output is retried once, then stored as failed.
INVALID_OUTPUT_ATTEMPTS = 2


async def enrich_escalation(ctx: dict[str, Any], outbox_id: str) -> str:
    return await run_outbox_job(ctx, outbox_id, _enrich, _give_up)


async def _load_input(jc: JobContext, handoff_id: UUID) -> AssessmentInput | None:
    async with jc.sessionmaker() as db:
        row = (
            await db.execute(
                select(SessionHandoff, User.name)
                .join(User, User.id == SessionHandoff.created_by)
                .where(SessionHandoff.id == handoff_id)
            )
        ).first()
        if row is None:
            return None
        handoff, creator_name = row
        if handoff.assessment_status != AssessmentStatus.pending:
            return None  # already stored (or given up): never call the model twice
        return AssessmentInput.from_snapshot(handoff.session_snapshot, handoff.engineer_notes, creator_name)


async def _enrich(jc: JobContext, row: OutboxMessage, attempt: int) -> str:
    handoff_id = UUID(row.payload["handoff_id"])
    data = await _load_input(jc, handoff_id)
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


async def _store(
    jc: JobContext, row: OutboxMessage, attempt: int, handoff_id: UUID, result: AssessmentResult
) -> str:
    async with jc.sessionmaker() as db:
        outbox = OutboxWriter(db, jc.relay)
        stored = await db.scalar(
            update(SessionHandoff)
            .where(
                SessionHandoff.id == handoff_id, SessionHandoff.assessment_status == AssessmentStatus.pending
            )
            .values(
                ai_assessment=result.assessment_json(),
                assessment_status=AssessmentStatus.ready,
                assessment_error=None,
                ai_model=result.model,
                ai_input_tokens=SessionHandoff.ai_input_tokens + result.input_tokens,
                ai_output_tokens=SessionHandoff.ai_output_tokens + result.output_tokens,
                ai_cache_read_tokens=SessionHandoff.ai_cache_read_tokens + result.cache_read_tokens,
                updated_at=datetime.now(UTC),
            )
            .returning(SessionHandoff.session_id)
        )
        if stored is None:
            return "another run stored the assessment first"
        await db.execute(
            update(AISession)
            .where(AISession.id == stored)
            .values(escalation_package=result.package_json(), updated_at=datetime.now(UTC))
        )
        outbox.add(
            row.account_id,
            Topic.event,
            {
                "type": "handoff_assessment_ready",
                "handoff_id": str(handoff_id),
                "session_id": str(stored),
                "account_id": str(row.account_id),
                "assessment": result.assessment_json(),
            },
        )
        # The outbox row is done in the same transaction as the result it stands for.
        await db.execute(mark_done(row, attempt))
        await outbox.commit()
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
