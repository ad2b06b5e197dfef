"""Request and response bodies of park, escalate, claim, release and the queue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self
from uuid import UUID

import msgspec

from handoffs.db.models import SessionHandoff
from handoffs.domain.rows import FromRow
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


class HandoffOut(FromRow):
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
    ai_usage: AIUsage | None = None
    """Not a column: filled from the ai_* columns once a model has answered."""

    @classmethod
    def of(cls, row: object) -> Self:
        out = super().of(row)
        h: SessionHandoff = row  # type: ignore[assignment]
        if h.ai_model:
            out.ai_usage = AIUsage(
                model=h.ai_model,
                input_tokens=h.ai_input_tokens,
                output_tokens=h.ai_output_tokens,
                cache_read_tokens=h.ai_cache_read_tokens,
            )
        return out


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
