"""The bell: per-recipient notifications, scoped to the caller's account."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import Notification, User
from handoffs.errors import NotFound


class NotificationService:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def list_for(
        self, user: User, *, unread_only: bool = False, limit: int = 100
    ) -> Sequence[Notification]:
        query = (
            select(Notification)
            .where(Notification.recipient_id == user.id, Notification.account_id == user.account_id)
            .order_by(Notification.created_at.desc(), Notification.id.desc())
            .limit(limit)
        )
        if unread_only:
            query = query.where(Notification.read_at.is_(None))
        return (await self.db.scalars(query)).all()

    async def unread_count(self, user: User) -> int:
        query = select(func.count()).where(
            Notification.recipient_id == user.id,
            Notification.account_id == user.account_id,
            Notification.read_at.is_(None),
        )
        return int(await self.db.scalar(query) or 0)

    async def mark_read(self, user: User, notification_id: UUID) -> Notification:
        """Mark one as read; reading it again keeps the first read time."""
        note = await self.db.scalar(
            select(Notification).where(
                Notification.id == notification_id,
                Notification.recipient_id == user.id,
                Notification.account_id == user.account_id,
            )
        )
        if note is None:
            raise NotFound("Notification not found")
        if note.read_at is None:
            note.read_at = func.now()
            await self.db.flush()
            await self.db.refresh(note)
        await self.db.commit()
        return note

    async def mark_all_read(self, user: User) -> int:
        result = await self.db.execute(
            update(Notification)
            .where(
                Notification.recipient_id == user.id,
                Notification.account_id == user.account_id,
                Notification.read_at.is_(None),
            )
            .values(read_at=func.now())
        )
        await self.db.commit()
        return int(getattr(result, "rowcount", 0) or 0)
