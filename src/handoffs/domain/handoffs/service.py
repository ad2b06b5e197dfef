"""Park, escalate, claim, release and the team queue.

Every write here is one transaction that also records its follow-up work in
the outbox; nothing slow (AI, email, PSA, live events) runs in the request.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ScalarSelect, Select, bindparam, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import AISession, Notification, SessionHandoff, SessionMessage, User
from handoffs.domain.handoffs.plan import HandOffDraft, plan_hand_off
from handoffs.domain.handoffs.schemas import HandoffCreate, Person, QueueItem
from handoffs.domain.handoffs.writes import write_hand_off
from handoffs.domain.sessions.service import visible_to
from handoffs.enums import (
    EVENT_TOPIC,
    SENIOR_ROLES,
    HandoffIntent,
    Role,
    SessionStatus,
)
from handoffs.errors import BadRequest, Conflict, Forbidden, NotFound
from handoffs.events import Actor, HandoffClaimed, HandoffReleased, event_payload, ids_of
from handoffs.outbox.relay import OutboxRelay
from handoffs.outbox.writer import OutboxWriter

#: The most transcript messages copied into a handoff's snapshot.
SNAPSHOT_MESSAGES = 500


def _open_handoff_id() -> ScalarSelect[UUID]:
    return (
        select(SessionHandoff.id)
        .where(SessionHandoff.session_id == bindparam("session_id"), SessionHandoff.claimed_by.is_(None))
        .limit(1)
        .scalar_subquery()
    )


def _seniors_except_caller() -> ScalarSelect[list[UUID]]:
    """Who an untargeted escalation notifies: the account's active engineers, admins and owners but the creator."""
    return (
        select(func.array_agg(User.id))
        .where(
            User.account_id == bindparam("account_id"),
            User.is_active.is_(True),
            User.role.in_([r.value for r in SENIOR_ROLES]),
            User.id != bindparam("user_id"),
        )
        .scalar_subquery()
    )


def _transcript_json() -> ScalarSelect[list[dict[str, Any]]]:
    """The latest ``SNAPSHOT_MESSAGES`` messages, oldest first, built as JSON by PostgreSQL."""
    recent = (
        select(SessionMessage.role, SessionMessage.content, SessionMessage.created_at, SessionMessage.id)
        .where(SessionMessage.session_id == bindparam("session_id"))
        .order_by(SessionMessage.created_at.desc(), SessionMessage.id.desc())
        .limit(SNAPSHOT_MESSAGES)
        .subquery()
    )
    message = func.json_build_object(
        "role", recent.c.role, "content", recent.c.content, "created_at", recent.c.created_at
    )
    return select(
        func.coalesce(
            func.json_agg(aggregate_order_by(message, recent.c.created_at, recent.c.id)),
            literal_column("'[]'::json"),
        )
    ).scalar_subquery()


#: Built once: lock the caller's own session and read, in the same round
#: trip, its open handoff, its transcript and whom an escalation notifies.
_HAND_OFF_LOCK = (
    select(AISession, _open_handoff_id(), _transcript_json(), _seniors_except_caller())
    .where(
        AISession.id == bindparam("session_id"),
        AISession.account_id == bindparam("account_id"),
        AISession.owner_id == bindparam("user_id"),
    )
    .with_for_update(of=AISession)
)


class HandoffService:
    def __init__(self, db: AsyncSession, relay: OutboxRelay | None = None) -> None:
        self.db = db
        self.outbox = OutboxWriter(db, relay)

    async def hand_off(self, user: User, session_id: UUID, data: HandoffCreate) -> HandOffDraft:
        """Park or escalate the caller's session: lock and read, plan (pure), one write, commit."""
        # One round trip: lock the session row (two hand-offs of one session
        # queue up here instead of racing; the partial unique index is the
        # backstop) and read what the handoff needs alongside it.
        found = (
            await self.db.execute(
                _HAND_OFF_LOCK,
                {"session_id": session_id, "account_id": user.account_id, "user_id": user.id},
            )
        ).first()
        if found is None:
            raise NotFound("AI session not found")
        session, open_handoff, transcript, seniors = found
        if session.status == SessionStatus.resolved:
            raise Conflict("This session is resolved; reopen it before handing it off.")
        if open_handoff is not None:
            raise Conflict("This session already has an open handoff.", handoff_id=str(open_handoff))
        target = await self._target(user, data.target_user_id)
        draft = plan_hand_off(
            user=user,
            session=session,
            transcript=transcript,
            data=data,
            target=target,
            seniors=seniors,
            now=datetime.now(UTC),
        )
        try:
            await write_hand_off(self.db, draft)
            self.outbox.dispatch_on_commit(row.id for row in draft.outbox)
            await self.outbox.commit()
        except IntegrityError as exc:
            await self.db.rollback()
            if "uq_handoffs_one_open_per_session" not in str(exc.orig):
                raise
            raise Conflict("This session already has an open handoff.") from exc
        return draft

    async def _target(self, user: User, target_user_id: UUID | None) -> User | None:
        if target_user_id is None:
            return None
        target = await self.db.scalar(
            select(User).where(
                User.id == target_user_id,
                User.account_id == user.account_id,
                User.is_active.is_(True),
            )
        )
        # Same message for "not in your account" and "no such user": no hint
        # that another tenant's id exists.
        if target is None or target.role not in SENIOR_ROLES:
            raise BadRequest("target_user_id is not an engineer, admin or owner in your account")
        if target.id == user.id:
            raise BadRequest("target_user_id cannot be yourself")
        return target

    # -- history -------------------------------------------------------------

    async def list_for_session(self, user: User, session_id: UUID) -> Sequence[SessionHandoff]:
        session_visible = await self.db.scalar(
            select(AISession.id).where(AISession.id == session_id, visible_to(user))
        )
        if session_visible is None:
            raise NotFound("AI session not found")
        query = (
            select(SessionHandoff)
            .where(SessionHandoff.session_id == session_id, SessionHandoff.account_id == user.account_id)
            .order_by(SessionHandoff.created_at.desc(), SessionHandoff.id.desc())
        )
        return (await self.db.scalars(query)).all()

    async def get(self, user: User, session_id: UUID, handoff_id: UUID) -> SessionHandoff:
        handoff = await self.db.scalar(
            select(SessionHandoff).where(
                SessionHandoff.id == handoff_id,
                SessionHandoff.session_id == session_id,
                SessionHandoff.account_id == user.account_id,
            )
        )
        if handoff is None:
            raise NotFound("Handoff not found")
        return handoff

    # -- claim / release -----------------------------------------------------

    async def claim(self, user: User, session_id: UUID, handoff_id: UUID) -> SessionHandoff:
        """Claim an open handoff. One conditional UPDATE decides the race.

        Under READ COMMITTED a concurrent claimer blocks on the row lock, then
        re-checks ``claimed_by IS NULL`` against the winner's committed row and
        updates nothing: exactly one claim succeeds, on any replica.
        """
        now = datetime.now(UTC)
        claimed = await self.db.scalar(
            update(SessionHandoff)
            .where(
                SessionHandoff.id == handoff_id,
                SessionHandoff.session_id == session_id,
                SessionHandoff.account_id == user.account_id,
                SessionHandoff.claimed_by.is_(None),
            )
            .values(claimed_by=user.id, claimed_at=now, updated_at=now)
            .returning(SessionHandoff)
            .execution_options(synchronize_session=False)
        )
        if claimed is None:
            # Nothing was written; the refusal is read in the same transaction.
            raise await self._claim_refusal(user, session_id, handoff_id)
        await self.db.execute(
            update(AISession)
            .where(AISession.id == session_id, AISession.account_id == user.account_id)
            .values(status=SessionStatus.claimed, assignee_id=user.id, updated_at=now)
        )
        # The claimer has dealt with this escalation: its bell entry is read. Others keep theirs.
        await self.db.execute(
            update(Notification)
            .where(
                Notification.recipient_id == user.id,
                Notification.handoff_id == handoff_id,
                Notification.read_at.is_(None),
            )
            .values(read_at=now)
        )
        self.outbox.add(
            user.account_id,
            EVENT_TOPIC,
            event_payload(
                HandoffClaimed(
                    **ids_of(claimed),
                    claimed_by=Actor(id=str(user.id), name=user.name),
                    claimed_at=now.isoformat(),
                )
            ),
        )
        await self.outbox.commit()
        return claimed

    async def _claim_refusal(self, user: User, session_id: UUID, handoff_id: UUID) -> Exception:
        row = (
            await self.db.execute(
                select(SessionHandoff.claimed_at, User.id, User.name)
                .join(User, User.id == SessionHandoff.claimed_by)
                .where(
                    SessionHandoff.id == handoff_id,
                    SessionHandoff.session_id == session_id,
                    SessionHandoff.account_id == user.account_id,
                )
            )
        ).first()
        if row is None:
            return NotFound("Handoff not found")
        claimed_at, winner_id, winner_name = row
        return Conflict(
            f"{winner_name} already picked this up.",
            claimed_by={"id": str(winner_id), "name": winner_name},
            claimed_at=claimed_at.isoformat() if claimed_at else None,
        )

    async def release(self, user: User, session_id: UUID, handoff_id: UUID) -> SessionHandoff:
        """Put a claimed handoff back in the queue: its claimer, or an admin/owner."""
        handoff = await self.get(user, session_id, handoff_id)
        if handoff.claimed_by is None:
            raise Conflict("This handoff is not claimed; it is already in the queue.")
        if handoff.claimed_by != user.id and not user.role.at_least(Role.admin):
            raise Forbidden("Only the engineer who picked this up, or an admin, can release it.")
        now = datetime.now(UTC)
        released = await self.db.scalar(
            update(SessionHandoff)
            .where(SessionHandoff.id == handoff.id, SessionHandoff.claimed_by == handoff.claimed_by)
            .values(claimed_by=None, claimed_at=None, released_at=now, updated_at=now)
            .returning(SessionHandoff)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        if released is None:
            raise Conflict("This handoff changed hands meanwhile; reload and try again.")
        back_to = (
            SessionStatus.escalated if handoff.intent == HandoffIntent.escalate else SessionStatus.parked
        )
        await self.db.execute(
            update(AISession)
            .where(AISession.id == session_id, AISession.account_id == user.account_id)
            .values(status=back_to, assignee_id=None, updated_at=now)
        )
        self.outbox.add(
            user.account_id,
            EVENT_TOPIC,
            event_payload(
                HandoffReleased(
                    **ids_of(released),
                    released_by=Actor(id=str(user.id), name=user.name),
                )
            ),
        )
        try:
            await self.outbox.commit()
        except IntegrityError as exc:
            raise Conflict(
                "The session has been handed off again since; this handoff cannot reopen."
            ) from exc
        return released

    # -- queue ---------------------------------------------------------------

    async def queue(self, user: User, limit: int = 200) -> list[QueueItem]:
        """Open handoffs of the caller's account: most urgent first, then oldest."""
        rows = await self.db.execute(queue_statement(user.account_id, limit))
        now = datetime.now(UTC)
        return [
            QueueItem(
                id=h.id,
                session_id=h.session_id,
                intent=h.intent,
                priority=h.priority,
                engineer_notes=h.engineer_notes,
                target_user_id=h.target_user_id,
                created_by=Person(id=h.created_by, name=creator_name),
                created_at=h.created_at,
                waiting_seconds=max(0, int((now - h.created_at).total_seconds())),
                session_title=title,
                problem_summary=summary,
                psa_ticket_id=ticket,
                assessment_status=h.assessment_status,
            )
            for h, title, summary, ticket, creator_name in rows.all()
        ]


def queue_statement(account_id: UUID, limit: int) -> Select[tuple[SessionHandoff, str, str, str | None, str]]:
    """The team queue's read: open handoffs with their session and creator, most urgent, then oldest.

    The partial index ``ix_handoffs_queue`` serves the filter and the order (a test EXPLAINs
    this very statement).
    """
    return (
        select(
            SessionHandoff,
            AISession.title,
            AISession.problem_summary,
            AISession.psa_ticket_id,
            User.name,
        )
        .join(AISession, AISession.id == SessionHandoff.session_id)
        .join(User, User.id == SessionHandoff.created_by)
        .where(SessionHandoff.account_id == account_id, SessionHandoff.claimed_by.is_(None))
        .order_by(SessionHandoff.priority_rank.desc(), SessionHandoff.created_at, SessionHandoff.id)
        .limit(limit)
    )
