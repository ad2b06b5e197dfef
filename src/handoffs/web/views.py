"""What each console page shows, read through the same services the API uses.

Pages are rendered on the server with everything they need; the page's
script then follows the live stream from ``last_event_id``, the newest event
id read *before* the page's data. Whatever happens while the page renders is
therefore replayed to it rather than lost (the handlers in console.js are
idempotent, so an event that the data already reflects changes nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import Account, SessionHandoff, User
from handoffs.domain.accounts.service import UserService
from handoffs.domain.handoffs.search import read_queue
from handoffs.domain.handoffs.service import HandoffService
from handoffs.domain.notifications.service import NotificationService
from handoffs.domain.sessions.service import SessionService
from handoffs.enums import SENIOR_ROLES, AssessmentStatus, Role, SessionStatus
from handoffs.events import EventBus

log = logging.getLogger(__name__)

#: Message roles as the transcript labels them.
ROLE_LABELS = {"user": "Engineer", "assistant": "AI assistant", "tool": "Tool output"}


class ConsoleViews:
    """The data of the console's pages for one signed-in user."""

    def __init__(self, db: AsyncSession, user: User, bus: EventBus | None) -> None:
        self.db = db
        self.user = user
        self.bus = bus
        self.sessions = SessionService(db)
        self.handoffs = HandoffService(db)
        self.users = UserService(db)

    @property
    def is_senior(self) -> bool:
        """Works the queue: sees it, picks up, follows the live stream."""
        return self.user.role in SENIOR_ROLES

    async def _resume_point(self) -> str | None:
        if not self.is_senior or self.bus is None:
            return None
        try:
            return await self.bus.latest_id(self.user.account_id)
        except RedisError:
            # The page still renders; its stream then starts live, without the replay.
            log.warning("could not read the newest event id for the console page", exc_info=True)
            return None

    async def chrome(self, page: str, *, current_session_id: UUID | None = None) -> dict[str, Any]:
        """What every signed-in page shows around its content: header, bell, sessions sidebar."""
        last_event_id = await self._resume_point()  # first: see the module docstring
        account = await self.db.get(Account, self.user.account_id)
        unread = await NotificationService(self.db).unread_count(self.user)
        user = self.user
        return {
            "user": user,
            "account_name": account.name if account else "",
            "is_senior": self.is_senior,
            "can_create": user.role.at_least(Role.engineer),
            "unread": unread,
            "sessions": await self.sessions.list_for(user),
            "current_session_id": current_session_id,
            "now": datetime.now(UTC),
            "page_data": {
                "page": page,
                "user": {"id": str(user.id), "name": user.name, "role": user.role.value},
                "stream": self.is_senior,
                "lastEventId": last_event_id,
                "serverNow": datetime.now(UTC).isoformat(),
                "unread": unread,
            },
        }

    async def sidebar(self, current_session_id: UUID | None) -> dict[str, Any]:
        return {
            "sessions": await self.sessions.list_for(self.user),
            "current_session_id": current_session_id,
        }

    async def console(self) -> dict[str, Any]:
        context = await self.chrome("console")
        queue = await read_queue(self.db, self.user) if self.is_senior else []
        context["queue"] = queue
        context["page_data"]["queue"] = msgspec.to_builtins(queue)
        context["page_data"]["people"] = await self._people_json()
        return context

    async def session_page(self, session_id: UUID) -> dict[str, Any]:
        context = await self.chrome("session", current_session_id=session_id)
        session = await self.sessions.get_visible(self.user, session_id)
        handoffs = await self.handoffs.list_for_session(self.user, session_id)
        people = await self._people()
        open_handoff = next((h for h in handoffs if h.claimed_by is None), None)
        mine = session.owner_id == self.user.id
        writable = session.status != SessionStatus.resolved
        context.update(
            session=session,
            transcript=transcript_of(await self.sessions.messages(session)),
            handoffs=handoffs,
            open_handoff=open_handoff,
            people=people,
            role_labels=ROLE_LABELS,
            owner_name=_name(people, session.owner_id),
            can_write=writable and self.user.id in (session.owner_id, session.assignee_id),
            can_hand_off=writable and mine and open_handoff is None,
            targets=[
                u for u in people.values() if u.is_active and u.role in SENIOR_ROLES and u.id != self.user.id
            ],
        )
        context["page_data"]["sessionId"] = str(session.id)
        return context

    async def handoff_page(self, session_id: UUID, handoff_id: UUID) -> dict[str, Any]:
        context = await self.chrome("handoff", current_session_id=session_id)
        context.update(await self.handoff_parts(session_id, handoff_id))
        handoff: SessionHandoff = context["handoff"]
        context["page_data"]["handoff"] = {
            "id": str(handoff.id),
            "sessionId": str(handoff.session_id),
            "assessmentStatus": handoff.assessment_status.value,
            "claimedBy": str(handoff.claimed_by) if handoff.claimed_by else None,
        }
        return context

    async def handoff_parts(self, session_id: UUID, handoff_id: UUID) -> dict[str, Any]:
        """The handoff context screen's data; also what its live parts re-render from."""
        # The session first: it answers 404 to whoever may not read it (a viewer,
        # another tenant), before anything about the handoff is read.
        session = await self.sessions.get_visible(self.user, session_id)
        handoff = await self.handoffs.get(self.user, session_id, handoff_id)
        people = await self._people()
        snapshot = handoff.session_snapshot or {}
        assessment = handoff.ai_assessment or {}
        return {
            "session": session,
            "handoff": handoff,
            "people": people,
            "creator_name": _name(people, handoff.created_by),
            "claimer_name": _name(people, handoff.claimed_by) if handoff.claimed_by else None,
            "target_name": _name(people, handoff.target_user_id) if handoff.target_user_id else None,
            "transcript": snapshot.get("messages") or [],
            "role_labels": ROLE_LABELS,
            "assessment": assessment,
            "package": session.escalation_package or {},
            "is_pending": handoff.assessment_status == AssessmentStatus.pending,
            "can_claim": self.is_senior and handoff.claimed_by is None and handoff.created_by != self.user.id,
            "can_release": handoff.claimed_by is not None
            and (handoff.claimed_by == self.user.id or self.user.role.at_least(Role.admin)),
            "now": datetime.now(UTC),
            "user": self.user,
        }

    async def _people(self) -> dict[UUID, User]:
        """Everyone of the account, former colleagues included: history names them too."""
        return {u.id: u for u in await self.users.colleagues(self.user, include_inactive=True)}

    async def _people_json(self) -> dict[str, str]:
        return {str(uid): u.name for uid, u in (await self._people()).items()}


def _name(people: dict[UUID, User], user_id: UUID | None) -> str:
    user = people.get(user_id) if user_id else None
    return user.name if user else "a former colleague"


def transcript_of(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """Session messages in the shape of a handoff snapshot's, so one template renders both."""
    return [{"role": m.role.value, "content": m.content, "created_at": m.created_at} for m in messages]
