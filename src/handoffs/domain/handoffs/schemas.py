"""Request and response bodies of park, escalate, claim, release and the queue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from handoffs.db.models import SessionHandoff
from handoffs.enums import AssessmentStatus, HandoffIntent, Priority, PsaSyncStatus

MAX_NOTES = 10_000


class HandoffCreate(msgspec.Struct, forbid_unknown_fields=True):
    intent: HandoffIntent
    engineer_notes: Annotated[str, msgspec.Meta(max_length=MAX_NOTES)] = ""
    priority: Priority = Priority.normal
    target_user_id: UUID | None = None


class AIUsage(msgspec.Struct):
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int


class HandoffOut(msgspec.Struct):
    id: UUID
    session_id: UUID
    account_id: UUID
    intent: HandoffIntent
    engineer_notes: str
    priority: Priority
    target_user_id: UUID | None
    created_by: UUID
    created_at: datetime
    claimed_by: UUID | None
    claimed_at: datetime | None
    released_at: datetime | None
    ai_assessment: dict[str, Any] | None
    assessment_status: AssessmentStatus
    assessment_error: str | None
    psa_sync_status: PsaSyncStatus
    psa_sync_error: str | None
    ai_usage: AIUsage | None

    @classmethod
    def of(cls, h: SessionHandoff) -> HandoffOut:
        return cls(
            id=h.id,
            session_id=h.session_id,
            account_id=h.account_id,
            intent=h.intent,
            engineer_notes=h.engineer_notes,
            priority=h.priority,
            target_user_id=h.target_user_id,
            created_by=h.created_by,
            created_at=h.created_at,
            claimed_by=h.claimed_by,
            claimed_at=h.claimed_at,
            released_at=h.released_at,
            ai_assessment=h.ai_assessment,
            assessment_status=h.assessment_status,
            assessment_error=h.assessment_error,
            psa_sync_status=h.psa_sync_status,
            psa_sync_error=h.psa_sync_error,
            ai_usage=AIUsage(
                model=h.ai_model,
                input_tokens=h.ai_input_tokens,
                output_tokens=h.ai_output_tokens,
                cache_read_tokens=h.ai_cache_read_tokens,
            )
            if h.ai_model
            else None,
        )


class Person(msgspec.Struct):
    id: UUID
    name: str


class ClaimConflict(msgspec.Struct):
    """The 409 body a claim loser gets: who won and when."""

    detail: str
    claimed_by: Person
    claimed_at: datetime | None


class QueueItem(msgspec.Struct):
    id: UUID
    session_id: UUID
    intent: HandoffIntent
    priority: Priority
    engineer_notes: str
    target_user_id: UUID | None
    created_by: Person
    created_at: datetime
    waiting_seconds: int
    session_title: str
    problem_summary: str
    psa_ticket_id: str | None
    assessment_status: AssessmentStatus
