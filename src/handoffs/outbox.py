"""The transactional outbox: work that must follow a commit, written inside it.

Rows are added to the caller's transaction, so they exist exactly when the
change that caused them does. The relay (worker issue) hands them to arq with
the row id as the job id; the live-event topic feeds the event bus.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.models import OutboxMessage


class Topic:
    """Outbox topics; job topics are arq function names."""

    enrich_escalation = "enrich_escalation"
    send_escalation_emails = "send_escalation_emails"
    push_to_psa = "push_to_psa"
    event = "event"


def add_outbox(db: AsyncSession, account_id: UUID, topic: str, payload: dict[str, Any]) -> OutboxMessage:
    row = OutboxMessage(account_id=account_id, topic=topic, payload=payload)
    db.add(row)
    return row
