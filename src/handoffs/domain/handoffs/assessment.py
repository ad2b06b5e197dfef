"""The assessment seen from the API: its partial while the model writes, and Retry.

Retry is one conditional UPDATE (``assessment_status <> 'pending'``) plus an
``enrich_escalation`` outbox row and a timeline entry, in one transaction: two
concurrent retries start one run, and the loser answers 409 like a retry while
one is running. The stored result (an offline stand-in, say) stays visible until
the new one replaces it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import SessionHandoff, User
from handoffs.domain.handoffs.service import handoff_of
from handoffs.domain.handoffs.timeline import record
from handoffs.enums import AssessmentStatus, HandoffState, JobTopic, TimelineKind
from handoffs.errors import Conflict
from handoffs.events import EventBus
from handoffs.outbox.relay import OutboxRelay
from handoffs.outbox.writer import OutboxWriter


async def partial_of(bus: EventBus, handoff: SessionHandoff) -> dict[str, Any] | None:
    """What the model has written so far, while the assessment is pending (else None)."""
    if handoff.assessment_status != AssessmentStatus.pending:
        return None
    return await bus.partial(handoff.id)


class AssessmentRetry:
    def __init__(self, db: AsyncSession, relay: OutboxRelay | None = None) -> None:
        self.db = db
        self.outbox = OutboxWriter(db, relay)

    async def retry(self, user: User, session_id: UUID, handoff_id: UUID) -> SessionHandoff:
        """Ask the AI again: after a failure, an offline stand-in, or for a fresh look."""
        handoff = await handoff_of(self.db, user, session_id, handoff_id)
        if handoff.assessment_status == AssessmentStatus.pending:
            raise Conflict("The assessment is being made right now.", state=handoff.state.value)
        if handoff.assessment_status == AssessmentStatus.not_requested:
            raise Conflict(
                "A parked handoff gets no assessment; escalate it instead.", state=handoff.state.value
            )
        if handoff.state == HandoffState.resolved:
            raise Conflict("This handoff is resolved.", state=handoff.state.value)
        started = await self.db.scalar(
            update(SessionHandoff)
            .where(
                SessionHandoff.id == handoff.id,
                SessionHandoff.account_id == user.account_id,
                SessionHandoff.assessment_status != AssessmentStatus.pending,
            )
            .values(assessment_status=AssessmentStatus.pending, updated_at=datetime.now(UTC))
            .returning(SessionHandoff.id)
            .execution_options(synchronize_session=False)
        )
        if started is None:
            raise Conflict("The assessment is being made right now.", state=handoff.state.value)
        previous = (handoff.ai_assessment or {}).get("source")
        await record(
            self.db, account_id=user.account_id, handoff_id=handoff.id, kind=TimelineKind.assessment_retried,
            actor_id=user.id, detail={"previous": previous},
        )  # fmt: skip
        ids = {"handoff_id": str(handoff.id), "session_id": str(handoff.session_id)}
        self.outbox.add(user.account_id, JobTopic.enrich_escalation, ids)
        await self.outbox.commit()
        await self.db.refresh(handoff)
        return handoff
