from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from handoffs.db.models import Notification
from handoffs.enums import NotificationKind


class NotificationOut(msgspec.Struct):
    id: UUID
    kind: NotificationKind
    title: str
    body: str
    handoff_id: UUID | None
    session_id: UUID | None
    read_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, n: Notification) -> NotificationOut:
        return cls(
            id=n.id,
            kind=n.kind,
            title=n.title,
            body=n.body,
            handoff_id=n.handoff_id,
            session_id=n.session_id,
            read_at=n.read_at,
            created_at=n.created_at,
        )


class UnreadCount(msgspec.Struct):
    unread: int
