"""The hand-off's decision, made before anything is written: a pure function of what was read.

``plan_hand_off`` takes the locked session, the caller, the request and the
people to tell, and returns a frozen :class:`HandOffDraft`: the handoff's
values, the session's next status, the bell entries and the outbox rows
(jobs and the ``handoff_created`` event). ``writes.write_hand_off`` sends the
draft to PostgreSQL as one statement. Nothing here touches the database, the
clock of the caller aside, so the rules read (and test) on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from uuid_utils.compat import uuid7

from handoffs.db.models import AISession, User
from handoffs.domain.escalation_policy.ladder import first_due
from handoffs.domain.escalation_policy.schemas import Level
from handoffs.domain.handoffs.schemas import HandoffCreate
from handoffs.domain.notifications.titles import escalation_title, snippet
from handoffs.enums import (
    EVENT_TOPIC,
    AssessmentStatus,
    HandoffIntent,
    HandoffState,
    JobTopic,
    NotificationKind,
    Priority,
    PsaSyncStatus,
    SessionStatus,
)
from handoffs.events import Actor, HandoffCreated, event_payload


@dataclass(frozen=True, slots=True)
class OutboxDraft:
    """An outbox row to write with the hand-off."""

    id: UUID
    topic: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class HandOffDraft:
    """Everything a hand-off writes. Its handoff fields read like a ``session_handoffs`` row,
    so the response is built from the draft itself (``HandoffOut.of``)."""

    id: UUID
    account_id: UUID
    session_id: UUID
    intent: HandoffIntent
    engineer_notes: str
    priority: Priority
    target_user_id: UUID | None
    created_by: UUID
    session_snapshot: dict[str, Any]
    assessment_status: AssessmentStatus
    created_at: datetime
    session_status: SessionStatus
    recipient_ids: tuple[UUID, ...]
    notification_ids: tuple[UUID, ...]
    notification_kind: NotificationKind
    title: str
    body: str
    timeline_id: UUID
    timeline_detail: dict[str, Any]
    next_escalation_at: datetime | None
    """The ladder's first step (None: parked, low, or no level)."""
    outbox: tuple[OutboxDraft, ...]
    # What a new handoff has not had yet (the response reads them like a row's columns).
    state: HandoffState = HandoffState.open
    claimed_by: None = None
    claimed_at: None = None
    first_claimed_at: None = None
    released_at: None = None
    resolved_by: None = None
    resolved_at: None = None
    resolution: None = None
    outcome: None = None
    escalation_level: int = 0
    ladder_next: int = 0
    ai_assessment: None = None
    assessment_error: None = None
    psa_sync_status: PsaSyncStatus = PsaSyncStatus.not_applicable
    psa_sync_error: None = None
    ai_model: None = None


def plan_hand_off(
    *,
    user: User,
    session: AISession,
    transcript: list[dict[str, Any]] | None,
    data: HandoffCreate,
    target: User | None,
    seniors: list[UUID] | None,
    levels: Sequence[Level],
    now: datetime,
) -> HandOffDraft:
    """What parking or escalating ``session`` writes: who is told, which jobs follow, what the queue hears."""
    escalate = data.intent == HandoffIntent.escalate
    handoff_id = uuid7()
    title = escalation_title(user.first_name, session.psa_ticket_id, session.problem_summary)
    parked_title = (
        f"Parked by {user.first_name}: {snippet(session.problem_summary) or '(no problem summary)'}"
    )
    # An escalation tells its target, or else every senior of the account; a park tells its
    # target only (a bell entry, no email), or nobody.
    if escalate:
        recipients: list[UUID] = [target.id] if target else list(seniors or [])
    else:
        recipients = [target.id] if target else []
    notes = data.engineer_notes.strip()
    ids = {"handoff_id": str(handoff_id), "session_id": str(session.id)}
    outbox: list[OutboxDraft] = []
    if escalate:
        outbox.append(OutboxDraft(uuid7(), JobTopic.enrich_escalation, ids))
        if recipients:
            payload = {**ids, "recipient_ids": [str(r) for r in recipients]}
            outbox.append(OutboxDraft(uuid7(), JobTopic.send_escalation_emails, payload))
        if session.psa_ticket_id:
            outbox.append(OutboxDraft(uuid7(), JobTopic.push_to_psa, ids))
        # The job reads the account's chat setup and its minimum priority; level 0 is the escalation.
        outbox.append(OutboxDraft(uuid7(), JobTopic.post_to_chat, {**ids, "level": 0}))
    created = HandoffCreated(
        handoff_id=str(handoff_id),
        session_id=str(session.id),
        account_id=str(user.account_id),
        title=title if escalate else parked_title,
        intent=data.intent.value,
        priority=data.priority.value,
        problem_summary=session.problem_summary,
        psa_ticket_id=session.psa_ticket_id,
        session_title=session.title,
        created_by=Actor(id=str(user.id), name=user.name),
        target_user_id=str(target.id) if target else None,
        recipient_ids=[str(r) for r in recipients],
    )
    outbox.append(OutboxDraft(uuid7(), EVENT_TOPIC, event_payload(created)))
    return HandOffDraft(
        id=handoff_id,
        account_id=user.account_id,
        session_id=session.id,
        intent=data.intent,
        engineer_notes=notes,
        priority=data.priority,
        target_user_id=target.id if target else None,
        created_by=user.id,
        session_snapshot={
            "title": session.title,
            "problem_summary": session.problem_summary,
            "psa_ticket_id": session.psa_ticket_id,
            "status": session.status.value,
            "messages": list(transcript or []),
        },
        assessment_status=AssessmentStatus.pending if escalate else AssessmentStatus.not_requested,
        created_at=now,
        session_status=SessionStatus.escalated if escalate else SessionStatus.parked,
        recipient_ids=tuple(recipients),
        notification_ids=tuple(uuid7() for _ in recipients),
        notification_kind=NotificationKind.escalation if escalate else NotificationKind.parked,
        title=title if escalate else parked_title,
        body=snippet(notes, 280),
        next_escalation_at=first_due(now, data.intent, data.priority, levels),
        timeline_id=uuid7(),
        timeline_detail={
            "intent": data.intent.value,
            "priority": data.priority.value,
            "target_user_id": str(target.id) if target else None,
            "notified": len(recipients),
        },
        outbox=tuple(outbox),
    )
