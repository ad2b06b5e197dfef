"""A handoff's timeline (audit trail): one row per change, written in the change's transaction.

``record`` adds the row to the caller's transaction, API and worker alike, so an
entry exists exactly when the change it describes does. ``TimelineService`` reads
it back for whoever can see the handoff.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from handoffs.db.models import TimelineEntry, User
from handoffs.domain.handoffs.schemas import TimelineEntryOut
from handoffs.domain.rows import Person
from handoffs.enums import TimelineKind


def timeline_row(
    *,
    account_id: UUID,
    handoff_id: UUID,
    kind: TimelineKind,
    actor_id: UUID | None,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """The values of one ``handoff_timeline`` row (for ``insert(TimelineEntry)``)."""
    when = at or datetime.now(UTC)
    return {
        "id": uuid7(),
        "account_id": account_id,
        "handoff_id": handoff_id,
        "kind": kind,
        "actor_id": actor_id,
        "detail": detail or {},
        "created_at": when,
        "updated_at": when,
    }


async def record(db: AsyncSession, **entry: Any) -> None:
    """Add a timeline entry (``timeline_row``'s fields) to ``db``'s transaction: it commits with the change."""
    await db.execute(insert(TimelineEntry).values(timeline_row(**entry)))


async def read_timeline(db: AsyncSession, account_id: UUID, handoff_id: UUID) -> list[TimelineEntryOut]:
    """The handoff's entries, oldest first, with their actors' names."""
    rows = await db.execute(
        select(TimelineEntry, User.name)
        .outerjoin(User, User.id == TimelineEntry.actor_id)
        .where(TimelineEntry.handoff_id == handoff_id, TimelineEntry.account_id == account_id)
        .order_by(TimelineEntry.created_at, TimelineEntry.id)
    )
    return [
        TimelineEntryOut(
            at=entry.created_at,
            kind=entry.kind.value,
            actor=Person(id=entry.actor_id, name=name) if entry.actor_id and name else None,
            detail=entry.detail or {},
        )
        for entry, name in rows.all()
    ]
