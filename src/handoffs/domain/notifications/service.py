"""The bell: per-recipient notifications, scoped to the caller's account."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Row, Select, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from handoffs.db.models import Notification, SessionHandoff, User
from handoffs.domain.rows import Claimer, Person
from handoffs.enums import HandoffState, NotificationKind
from handoffs.errors import NotFound


async def notify(
    db: AsyncSession,
    *,
    account_id: UUID,
    recipients: Iterable[UUID | None],
    kind: NotificationKind,
    title: str,
    body: str = "",
    handoff_id: UUID | None = None,
    session_id: UUID | None = None,
    skip: Iterable[UUID | None] = (),
) -> list[UUID]:
    """Add one bell entry per recipient to ``db``'s transaction; returns who was told.

    Nobody is told twice, and nobody in ``skip`` (the person who acted) is told at all.
    """
    skipped = set(skip)
    told = list(dict.fromkeys(r for r in recipients if r is not None and r not in skipped))
    if told:
        now = datetime.now(UTC)
        await db.execute(
            insert(Notification),
            [
                {
                    "id": uuid7(),
                    "account_id": account_id,
                    "recipient_id": recipient,
                    "kind": kind,
                    "title": title[:300],
                    "body": body,
                    "handoff_id": handoff_id,
                    "session_id": session_id,
                    "created_at": now,
                    "updated_at": now,
                }
                for recipient in told
            ],
        )
    return told


def _with_handoff(user: User) -> Select[Any]:
    """The caller's notifications with their handoff's state now and its claimer's id and name."""
    return (
        select(Notification, SessionHandoff.state, SessionHandoff.claimed_by, Claimer.name)
        .outerjoin(SessionHandoff, SessionHandoff.id == Notification.handoff_id)
        .outerjoin(Claimer, Claimer.id == SessionHandoff.claimed_by)
        .where(Notification.recipient_id == user.id, Notification.account_id == user.account_id)
    )


def _shown(row: Row[Any]) -> tuple[Notification, HandoffState | None, Person | None]:
    note, state, claimer_id, name = row
    return note, state, Person(id=claimer_id, name=name) if claimer_id and name else None


class NotificationService:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def list_for(
        self, user: User, *, unread_only: bool = False, limit: int = 100
    ) -> list[tuple[Notification, HandoffState | None, Person | None]]:
        """The caller's notifications, newest first, each with its handoff's state now and who has it."""
        query = (
            _with_handoff(user).order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)
        )
        if unread_only:
            query = query.where(Notification.read_at.is_(None))
        return [_shown(row) for row in (await self.db.execute(query)).all()]

    async def unread_count(self, user: User) -> int:
        query = select(func.count()).where(
            Notification.recipient_id == user.id,
            Notification.account_id == user.account_id,
            Notification.read_at.is_(None),
        )
        return int(await self.db.scalar(query) or 0)

    async def mark_read(
        self, user: User, notification_id: UUID
    ) -> tuple[Notification, HandoffState | None, Person | None]:
        """Mark one as read; reading it again keeps the first read time. Returns it as ``list_for`` does."""
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
        row = (await self.db.execute(_with_handoff(user).where(Notification.id == note.id))).one()
        await self.db.commit()
        return _shown(row)

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
