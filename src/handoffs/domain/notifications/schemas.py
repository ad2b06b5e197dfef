from __future__ import annotations

from datetime import datetime
from typing import Self
from uuid import UUID

import msgspec

from handoffs.domain.rows import FromRow, Person
from handoffs.enums import HandoffState, NotificationKind


class NotificationOut(FromRow):
    id: UUID
    kind: NotificationKind
    title: str
    body: str
    handoff_id: UUID | None
    session_id: UUID | None
    read_at: datetime | None
    created_at: datetime
    handoff_state: HandoffState | None = None
    """The handoff's state now, so an escalation someone else took reads as taken."""
    handoff_claimed_by: Person | None = None
    """Who has the handoff now (while claimed): "Taken by Sam Senior"."""

    @classmethod
    def with_state(cls, row: object, state: HandoffState | None, claimed_by: Person | None = None) -> Self:
        out = cls.of(row)
        out.handoff_state = state
        out.handoff_claimed_by = claimed_by if state == HandoffState.claimed else None
        return out


class UnreadCount(msgspec.Struct):
    unread: int
