"""Park and escalate (the hand-off), and reading a session's handoffs.

The hand-off is one transaction that also records its follow-up work in the
outbox; nothing slow (AI, email, PSA, live events) runs in the request. What
follows the hand-off (claim, release, reassign, resolve, withdraw) is in
``lifecycle``; comments in ``comments``; the queue and the search in ``search``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ScalarSelect, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import AISession, EscalationPolicy, SessionHandoff, SessionMessage, User
from handoffs.domain.escalation_policy.ladder import levels_of
from handoffs.domain.handoffs.plan import HandOffDraft, plan_hand_off
from handoffs.domain.handoffs.schemas import HandoffCreate
from handoffs.domain.handoffs.writes import write_hand_off
from handoffs.domain.sessions.service import visible_to
from handoffs.enums import SENIOR_ROLES, HandoffState
from handoffs.errors import BadRequest, Conflict, NotFound
from handoffs.outbox.relay import OutboxRelay
from handoffs.outbox.writer import OutboxWriter

#: The most transcript messages copied into a handoff's snapshot.
SNAPSHOT_MESSAGES = 500


def _unresolved_handoff() -> ScalarSelect[dict[str, Any] | None]:
    """The session's open or claimed handoff (at most one, by a unique index) and its claimer, as JSON."""
    return (
        select(
            func.json_build_object(
                "id", SessionHandoff.id,
                "state", SessionHandoff.state,
                "claimed_by", SessionHandoff.claimed_by,
                "claimer_name", User.name,
            )
        )
        .outerjoin(User, User.id == SessionHandoff.claimed_by)
        .where(SessionHandoff.session_id == bindparam("session_id"), SessionHandoff.state != HandoffState.resolved)
        .limit(1)
        .scalar_subquery()
    )  # fmt: skip


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


def _policy_levels() -> ScalarSelect[list[dict[str, Any]] | None]:
    """The account's escalation ladder (None: the default applies)."""
    return (
        select(EscalationPolicy.levels)
        .where(EscalationPolicy.account_id == bindparam("account_id"))
        .scalar_subquery()
    )


#: Built once: lock the caller's own session and read, in the same round trip, its
#: unresolved handoff, its transcript, whom an escalation notifies and the account's ladder.
_HAND_OFF_LOCK = (
    select(AISession, _unresolved_handoff(), _transcript_json(), _seniors_except_caller(), _policy_levels())
    .where(
        AISession.id == bindparam("session_id"),
        AISession.account_id == bindparam("account_id"),
        AISession.owner_id == bindparam("user_id"),
    )
    .with_for_update(of=AISession)
)


def _already_handed_off(unresolved: dict[str, Any]) -> Conflict:
    """The 409 of handing off a session that is already waiting, or being worked on."""
    if unresolved["state"] == HandoffState.claimed.value:
        name = unresolved.get("claimer_name") or "A colleague"
        return Conflict(
            f"{name} is working on this; add a comment on the handoff instead of handing it off again.",
            handoff_id=str(unresolved["id"]),
            state=HandoffState.claimed.value,
            claimed_by={"id": str(unresolved["claimed_by"]), "name": name},
        )
    return Conflict(
        "This session already has an open handoff.",
        handoff_id=str(unresolved["id"]),
        state=HandoffState.open.value,
    )


async def handoff_of(db: AsyncSession, user: User, session_id: UUID, handoff_id: UUID) -> SessionHandoff:
    """A handoff of the caller's account, or 404. A handoff exists only for a handed-off session,
    which everyone of the account may read (one visibility rule), so the account is the check."""
    handoff = await db.scalar(
        select(SessionHandoff).where(
            SessionHandoff.id == handoff_id,
            SessionHandoff.session_id == session_id,
            SessionHandoff.account_id == user.account_id,
        )
    )
    if handoff is None:
        raise NotFound("Handoff not found")
    return handoff


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
        session, unresolved, transcript, seniors, policy = found
        if unresolved is not None:
            raise _already_handed_off(unresolved)
        target = await self._target(user, data.target_user_id)
        draft = plan_hand_off(
            user=user,
            session=session,
            transcript=transcript,
            data=data,
            target=target,
            seniors=seniors,
            levels=levels_of(policy),
            now=datetime.now(UTC),
        )
        try:
            await write_hand_off(self.db, draft)
            self.outbox.dispatch_on_commit(row.id for row in draft.outbox)
            await self.outbox.commit()
        except IntegrityError as exc:
            await self.db.rollback()
            if "uq_handoffs_one_unresolved_per_session" not in str(exc.orig):
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
        return await handoff_of(self.db, user, session_id, handoff_id)
