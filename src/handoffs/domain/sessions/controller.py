"""HTTP surface of AI sessions."""

from __future__ import annotations

from uuid import UUID

from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from handoffs.deps import CurrentUser, DbSession
from handoffs.domain.sessions.schemas import (
    MessageCreate,
    MessageOut,
    SessionCreate,
    SessionDetail,
    SessionOut,
)
from handoffs.domain.sessions.service import SessionService
from handoffs.enums import Role
from handoffs.errors import Detail
from handoffs.security.auth import requires_role


def provide_session_service(db_session: DbSession) -> SessionService:
    return SessionService(db_session)


class SessionController(Controller):
    path = "/api/v1/ai-sessions"
    tags = ["ai-sessions"]
    dependencies = {
        "sessions": Provide(provide_session_service, sync_to_thread=False),
    }

    @post("/", guards=[requires_role(Role.engineer, "start sessions")])
    async def create_session(
        self, data: JSONBody[SessionCreate], user: CurrentUser, sessions: NamedDependency[SessionService]
    ) -> SessionOut:
        """Start an AI troubleshooting session."""
        return SessionOut.of(await sessions.create(user, data))

    @get("/")
    async def list_sessions(
        self, user: CurrentUser, sessions: NamedDependency[SessionService]
    ) -> list[SessionOut]:
        """The caller's sessions (owned or claimed), newest first."""
        return [SessionOut.of(s) for s in await sessions.list_for(user)]

    @get("/{session_id:uuid}")
    async def get_session(
        self, session_id: FromPath[UUID], user: CurrentUser, sessions: NamedDependency[SessionService]
    ) -> SessionDetail:
        """One session with its transcript and escalation package."""
        session = await sessions.get_visible(user, session_id)
        return SessionDetail.with_messages(session, list(await sessions.messages(session)))

    @post(
        "/{session_id:uuid}/messages",
        guards=[requires_role(Role.engineer, "write to sessions")],
        responses={
            409: ResponseSpec(
                data_container=Detail, generate_examples=False, description="The session is resolved"
            )
        },
    )
    async def add_message(
        self,
        session_id: FromPath[UUID],
        data: JSONBody[MessageCreate],
        user: CurrentUser,
        sessions: NamedDependency[SessionService],
    ) -> MessageOut:
        """Append a message to the transcript."""
        return MessageOut.of(await sessions.add_message(user, session_id, data))
