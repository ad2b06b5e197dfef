from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from handoffs.domain.rows import FromRow
from handoffs.enums import NotificationKind


class NotificationOut(FromRow):
    id: UUID
    kind: NotificationKind
    title: str
    body: str
    handoff_id: UUID | None
    session_id: UUID | None
    read_at: datetime | None
    created_at: datetime


class UnreadCount(msgspec.Struct):
    unread: int
