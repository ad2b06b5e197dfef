"""Comments on a handoff: the junior and the claimer talk it through, readers follow.

Anyone who can see the handoff may comment (viewers read only: the route's guard).
The other side is told: the creator's comment goes to the current claimer, the
claimer's to the creator, anyone else's to both. Each comment also writes a
timeline entry and a ``handoff_commented`` live event, in its transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from handoffs.db.models import HandoffComment, SessionHandoff, User
from handoffs.domain.handoffs.schemas import CommentCreate, CommentOut
from handoffs.domain.handoffs.service import handoff_of
from handoffs.domain.handoffs.timeline import record
from handoffs.domain.notifications.service import notify
from handoffs.domain.notifications.titles import lifecycle_title, snippet
from handoffs.domain.rows import Person
from handoffs.enums import EVENT_TOPIC, NotificationKind, TimelineKind
from handoffs.errors import BadRequest
from handoffs.events import Actor, Comment, HandoffCommented, event_payload, ids_of
from handoffs.outbox.relay import OutboxRelay
from handoffs.outbox.writer import OutboxWriter


class HandoffComments:
    def __init__(self, db: AsyncSession, relay: OutboxRelay | None = None) -> None:
        self.db = db
        self.outbox = OutboxWriter(db, relay)

    async def _handoff(self, user: User, session_id: UUID, handoff_id: UUID) -> SessionHandoff:
        return await handoff_of(self.db, user, session_id, handoff_id)

    async def add(self, user: User, session_id: UUID, handoff_id: UUID, data: CommentCreate) -> CommentOut:
        body = data.body.strip()
        if not body:
            raise BadRequest("body: write something (a comment cannot be blank)")
        handoff = await self._handoff(user, session_id, handoff_id)
        now = datetime.now(UTC)
        comment_id = uuid7()
        await self.db.execute(
            insert(HandoffComment).values(
                id=comment_id,
                account_id=user.account_id,
                handoff_id=handoff.id,
                author_id=user.id,
                body=body,
                created_at=now,
                updated_at=now,
            )
        )
        if user.id == handoff.created_by:
            other_side = [handoff.claimed_by]
        elif user.id == handoff.claimed_by:
            other_side = [handoff.created_by]
        else:
            other_side = [handoff.created_by, handoff.claimed_by]
        summary = str((handoff.session_snapshot or {}).get("problem_summary") or "")
        told = await notify(
            self.db,
            account_id=user.account_id,
            recipients=other_side,
            kind=NotificationKind.comment,
            title=lifecycle_title(user.name, "commented on", summary),
            body=snippet(body, 280),
            handoff_id=handoff.id,
            session_id=handoff.session_id,
            skip=[user.id],
        )
        await record(
            self.db,
            account_id=user.account_id,
            handoff_id=handoff.id,
            kind=TimelineKind.commented,
            actor_id=user.id,
            detail={"comment_id": str(comment_id), "excerpt": snippet(body, 140)},
            at=now,
        )
        out = CommentOut(id=comment_id, author=Person(id=user.id, name=user.name), body=body, created_at=now)
        event = HandoffCommented(
            **ids_of(handoff),
            comment=Comment(
                id=str(comment_id),
                author=Actor(id=str(user.id), name=user.name),
                body=body,
                created_at=now.isoformat(),
            ),
            recipient_ids=[str(r) for r in told],
        )
        self.outbox.add(user.account_id, EVENT_TOPIC, event_payload(event))
        await self.outbox.commit()
        return out

    async def list(self, user: User, session_id: UUID, handoff_id: UUID) -> list[CommentOut]:
        """The handoff's comments, oldest first."""
        handoff = await self._handoff(user, session_id, handoff_id)
        rows = await self.db.execute(
            select(HandoffComment, User.name)
            .join(User, User.id == HandoffComment.author_id)
            .where(HandoffComment.handoff_id == handoff.id, HandoffComment.account_id == user.account_id)
            .order_by(HandoffComment.created_at, HandoffComment.id)
        )
        return [
            CommentOut(
                id=c.id, author=Person(id=c.author_id, name=name), body=c.body, created_at=c.created_at
            )
            for c, name in rows.all()
        ]
