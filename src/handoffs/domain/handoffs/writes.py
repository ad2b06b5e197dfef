"""The hand-off's writes as ONE fixed-shape statement.

The handoff row, the session's move, a notification per recipient, the
timeline's ``created`` entry and the outbox rows go to PostgreSQL in a single round trip: data-modifying CTEs,
with the variable-length parts passed as arrays and expanded by ``unnest``,
so the statement text never changes and stays prepared on the connection.
Foreign keys are checked at the end of the statement, when the handoff row
exists.
"""

from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.domain.handoffs.plan import HandOffDraft

HAND_OFF_WRITE = text(
    """
WITH moved AS (
    UPDATE ai_sessions SET status = :session_status, assignee_id = NULL, updated_at = :now
    WHERE id = :session_id
), notified AS (
    INSERT INTO notifications
        (id, account_id, recipient_id, kind, title, body, handoff_id, session_id, created_at, updated_at)
    SELECT n.id, :account_id, n.recipient_id, :kind, :title, :body, :handoff_id, :session_id, :now, :now
    FROM unnest(CAST(:notification_ids AS uuid[]), CAST(:recipient_ids AS uuid[])) AS n(id, recipient_id)
), recorded AS (
    INSERT INTO handoff_timeline (id, account_id, handoff_id, kind, actor_id, detail, created_at, updated_at)
    VALUES (:timeline_id, :account_id, :handoff_id, 'created', :created_by, CAST(:timeline_detail AS jsonb),
            :now, :now)
), outboxed AS (
    INSERT INTO outbox (id, account_id, topic, payload, status, attempts, created_at, updated_at)
    SELECT o.id, :account_id, o.topic, CAST(o.payload AS jsonb), 'pending', 0, :now, :now
    FROM unnest(CAST(:outbox_ids AS uuid[]), CAST(:outbox_topics AS text[]), CAST(:outbox_payloads AS text[]))
        AS o(id, topic, payload)
)
INSERT INTO session_handoffs
    (id, account_id, session_id, intent, engineer_notes, priority, target_user_id, created_by,
     session_snapshot, assessment_status, ai_input_tokens, ai_output_tokens, ai_cache_read_tokens,
     psa_sync_status, state, version, escalation_level, ladder_started_at, ladder_next, next_escalation_at,
     created_at, updated_at)
VALUES
    (:handoff_id, :account_id, :session_id, :intent, :notes, :priority, :target_user_id, :created_by,
     CAST(:snapshot AS jsonb), :assessment_status, 0, 0, 0, 'not_applicable', 'open', 0, 0, :now, 0,
     :next_escalation_at, :now, :now)
"""
)


async def write_hand_off(db: AsyncSession, draft: HandOffDraft) -> None:
    """Write the planned hand-off (handoff, session move, bell entries, outbox rows) in one statement."""
    await db.execute(
        HAND_OFF_WRITE,
        {
            "handoff_id": draft.id,
            "account_id": draft.account_id,
            "session_id": draft.session_id,
            "intent": draft.intent.value,
            "notes": draft.engineer_notes,
            "priority": draft.priority.value,
            "target_user_id": draft.target_user_id,
            "created_by": draft.created_by,
            "snapshot": json.dumps(draft.session_snapshot),
            "assessment_status": draft.assessment_status.value,
            "session_status": draft.session_status.value,
            "now": draft.created_at,
            "notification_ids": list(draft.notification_ids),
            "recipient_ids": list(draft.recipient_ids),
            "kind": draft.notification_kind.value,
            "title": draft.title,
            "body": draft.body,
            "timeline_id": draft.timeline_id,
            "next_escalation_at": draft.next_escalation_at,
            "timeline_detail": json.dumps(draft.timeline_detail),
            "outbox_ids": [row.id for row in draft.outbox],
            "outbox_topics": [row.topic for row in draft.outbox],
            "outbox_payloads": [json.dumps(row.payload) for row in draft.outbox],
        },
    )
