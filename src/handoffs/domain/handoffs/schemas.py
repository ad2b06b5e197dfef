"""Request and response bodies of the handoff's life: hand-off, claim, release, reassign,
resolve, withdraw, comments, timeline, the queue, the search and similar past handoffs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self
from uuid import UUID

import msgspec

from handoffs.db.models import SessionHandoff
from handoffs.domain.rows import FromRow, Person
from handoffs.domain.text import Text
from handoffs.enums import AssessmentStatus, HandoffIntent, HandoffState, Outcome, Priority, PsaSyncStatus

MAX_NOTES = 10_000
MAX_TEXT = 10_000
#: A resolution, a comment: at least one character that is not blank (checked after strip too).
RequiredText = Annotated[Text, msgspec.Meta(min_length=1, max_length=MAX_TEXT)]
OptionalText = Annotated[Text, msgspec.Meta(max_length=MAX_TEXT)]


class HandoffCreate(msgspec.Struct, forbid_unknown_fields=True):
    intent: HandoffIntent
    engineer_notes: Annotated[Text, msgspec.Meta(max_length=MAX_NOTES)] = ""
    priority: Priority = Priority.normal
    target_user_id: UUID | None = None


class ReleaseBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: OptionalText = ""


class ResolveBody(msgspec.Struct, forbid_unknown_fields=True):
    resolution: RequiredText
    # ``withdrawn`` is not offered: only the creator's withdraw sets it.
    outcome: Literal["fixed", "workaround", "not_reproducible", "duplicate", "other"] = "fixed"


class ReassignBody(msgspec.Struct, forbid_unknown_fields=True):
    to_user_id: UUID
    note: OptionalText = ""


class WithdrawBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: OptionalText = ""


class CommentCreate(msgspec.Struct, forbid_unknown_fields=True):
    body: RequiredText


class AIUsage(msgspec.Struct):
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int = 0
    cost_usd: float = 0.0


class SuggestedEngineer(msgspec.Struct):
    """Someone who resolved similar handoffs: whom to hand this one to, or ask."""

    id: UUID
    name: str
    resolved_similar: int
    """How many of the similar handoffs (``GET .../similar``) they resolved."""


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
    state: HandoffState
    first_claimed_at: datetime | None
    resolved_by: UUID | None
    resolved_at: datetime | None
    resolution: str | None
    outcome: Outcome | None
    escalation_level: int
    ai_assessment: dict[str, Any] | None
    assessment_status: AssessmentStatus
    assessment_error: str | None
    psa_sync_status: PsaSyncStatus
    psa_sync_error: str | None
    ai_input_tokens: int = 0
    ai_output_tokens: int = 0
    ai_cache_read_tokens: int = 0
    ai_cache_write_tokens: int = 0
    ai_cost_usd: float = 0.0
    """What the model calls of this handoff cost, in USD (handoffs.pricing)."""
    ai_usage: AIUsage | None = None
    """Not a column: filled from the ai_* columns once a model has answered."""
    time_to_claim_seconds: float | None = None
    """Not a column: the first claim minus the creation; null while never claimed."""
    assessment_source: Literal["anthropic", "offline"] | None = None
    """Not a column: who wrote the stored assessment; ``offline`` with ``assessment_status: failed``
    is the offline assessor standing in for an AI assessment that could not be made."""
    ai_assessment_partial: dict[str, Any] | None = None
    """Not a column: while ``pending``, the newest ``handoff_assessment_delta`` (``seq``, ``field``,
    ``text``, ``partial``) for a client that joins mid-way; filled by single-handoff reads."""
    suggested_engineers: list[SuggestedEngineer] = msgspec.field(default_factory=list)
    """Not a column: who resolved the similar handoffs, most first (``similar.suggested_engineers``).
    Filled by the read of one handoff and the hand-off; the transitions' answers leave it empty."""

    @classmethod
    def of(cls, row: object) -> Self:
        out = super().of(row)
        h: SessionHandoff = row  # type: ignore[assignment]
        out.time_to_claim_seconds = seconds_between(h.created_at, h.first_claimed_at)
        source = (h.ai_assessment or {}).get("source")
        out.assessment_source = source if source in ("anthropic", "offline") else None
        if h.ai_model:
            out.ai_usage = AIUsage(
                model=h.ai_model,
                input_tokens=h.ai_input_tokens,
                output_tokens=h.ai_output_tokens,
                cache_read_tokens=h.ai_cache_read_tokens,
                cache_write_tokens=h.ai_cache_write_tokens,
                cost_usd=float(h.ai_cost_usd),
            )
        return out


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, (end - start).total_seconds()), 3)


class StateConflict(msgspec.Struct):
    """A 409 of a transition: what the handoff is now, so the client can show it."""

    detail: str
    state: HandoffState
    claimed_by: Person | None = None


class CommentOut(msgspec.Struct):
    id: UUID
    author: Person
    body: str
    created_at: datetime


class TimelineEntryOut(msgspec.Struct):
    at: datetime
    kind: str
    actor: Person | None
    detail: dict[str, Any]


class ClaimConflict(msgspec.Struct):
    """The 409 of a claim that did not win: where the handoff is now and, while it is claimed (a
    claim loser), who won and when."""

    detail: str
    state: HandoffState
    claimed_by: Person | None = None
    claimed_at: datetime | None = None


class HandOffConflict(msgspec.Struct):
    """The 409 of handing off a session that already has an unresolved handoff: which one, its
    state and, while claimed, who is working on it."""

    detail: str
    handoff_id: UUID | None = None
    state: HandoffState | None = None
    claimed_by: Person | None = None


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
    escalation_level: int = 0
    targeted_at_me: bool = False
    """A handoff raised for the caller by name (``target_user_id``): the console marks it "for you"."""


class HandoffListItem(msgspec.Struct):
    """A row of ``GET /api/v1/handoffs``: the handoff, its session's problem and the people."""

    id: UUID
    session_id: UUID
    state: HandoffState
    intent: HandoffIntent
    priority: Priority
    created_at: datetime
    created_by: Person
    claimed_by: Person | None
    claimed_at: datetime | None
    resolved_by: Person | None
    resolved_at: datetime | None
    outcome: Outcome | None
    resolution: str | None
    engineer_notes: str
    target_user_id: UUID | None
    session_title: str
    problem_summary: str
    psa_ticket_id: str | None
    time_to_claim_seconds: float | None
    escalation_level: int


class HandoffPage(msgspec.Struct):
    items: list[HandoffListItem]
    next_cursor: str | None


class SimilarHandoff(msgspec.Struct):
    """A resolved handoff of the account like another one, with how it was fixed (``GET .../similar``)."""

    handoff_id: UUID
    session_id: UUID
    problem_summary: str
    resolution: str
    resolved_by: Person | None
    """Null only when the resolver's user was deleted."""
    resolved_at: datetime
    score: float
    """How alike, 0..1: ``ts_rank_cd`` normalised by length and by ``rank / (rank + 1)`` (similar.py)."""
    outcome: Outcome
    resolver_available: bool
    """The resolver is still an active engineer, admin or owner of the account: someone to hand it to."""
