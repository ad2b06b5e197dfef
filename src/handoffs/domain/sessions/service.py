"""AI sessions: who may see and write them, and their transcripts."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import AISession, SessionHandoff, SessionMessage, User
from handoffs.domain.sessions.schemas import MessageCreate, SessionCreate
from handoffs.enums import SessionStatus
from handoffs.errors import Conflict, NotFound

#: The title of a session created without one.
UNTITLED = "Untitled session"


def visible_to(user: User) -> ColumnElement[bool]:
    """The one visibility rule of every read: a session (and its handoffs) is visible to its
    owner and, once handed off, to everyone of the account, viewers included (read-only)."""
    handed_off = exists().where(SessionHandoff.session_id == AISession.id)
    return (AISession.account_id == user.account_id) & or_(AISession.owner_id == user.id, handed_off)


class SessionService:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def create(self, user: User, data: SessionCreate) -> AISession:
        session = AISession(
            account_id=user.account_id,
            owner_id=user.id,
            title=data.title.strip() or UNTITLED,
            problem_summary=data.problem_summary.strip(),
            psa_ticket_id=data.psa_ticket_id,
            status=SessionStatus.active,
        )
        self.db.add(session)
        await self.db.commit()
        return session

    async def list_for(self, user: User, limit: int = 200) -> Sequence[AISession]:
        """The user's own sessions and the ones they claimed, newest first."""
        query = (
            select(AISession)
            .where(AISession.account_id == user.account_id)
            .where(or_(AISession.owner_id == user.id, AISession.assignee_id == user.id))
            .order_by(AISession.created_at.desc(), AISession.id.desc())
            .limit(limit)
        )
        return (await self.db.scalars(query)).all()

    async def get_visible(self, user: User, session_id: UUID) -> AISession:
        session = await self.db.scalar(select(AISession).where(AISession.id == session_id, visible_to(user)))
        if session is None:
            raise NotFound("AI session not found")
        return session

    async def messages(self, session: AISession) -> Sequence[SessionMessage]:
        query = (
            select(SessionMessage)
            .where(SessionMessage.session_id == session.id)
            .order_by(SessionMessage.created_at, SessionMessage.id)
        )
        return (await self.db.scalars(query)).all()

    async def add_message(self, user: User, session_id: UUID, data: MessageCreate) -> SessionMessage:
        """Append to the transcript: the owner, or the senior who claimed it."""
        session = await self.db.scalar(
            select(AISession).where(
                AISession.id == session_id,
                AISession.account_id == user.account_id,
                or_(AISession.owner_id == user.id, AISession.assignee_id == user.id),
            )
        )
        if session is None:
            raise NotFound("AI session not found")
        if session.status == SessionStatus.resolved:
            raise Conflict("This session is resolved; it takes no more messages.")
        message = SessionMessage(
            account_id=user.account_id, session_id=session.id, role=data.role, content=data.content
        )
        self.db.add(message)
        await self.db.commit()
        return message
