"""HTTP surface of park/escalate, claim, release and the team queue."""

from __future__ import annotations

from uuid import UUID

from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from handoffs.deps import CurrentUser, DbSession
from handoffs.domain.handoffs.schemas import ClaimConflict, HandoffCreate, HandoffOut, QueueItem
from handoffs.domain.handoffs.service import HandoffService
from handoffs.enums import Role
from handoffs.outbox.relay import OutboxRelay
from handoffs.security.auth import requires_role


def provide_handoff_service(db_session: DbSession, relay: NamedDependency[OutboxRelay]) -> HandoffService:
    return HandoffService(db_session, relay)


class HandoffController(Controller):
    path = "/api/v1/ai-sessions"
    tags = ["handoffs"]
    dependencies = {
        "handoffs": Provide(provide_handoff_service, sync_to_thread=False),
    }

    @post("/{session_id:uuid}/handoff")
    async def hand_off(
        self,
        session_id: FromPath[UUID],
        data: JSONBody[HandoffCreate],
        user: CurrentUser,
        handoffs: NamedDependency[HandoffService],
    ) -> HandoffOut:
        """Park or escalate the caller's session. Returns at once; AI, email and PSA work follow."""
        return HandoffOut.of(await handoffs.hand_off(user, session_id, data))

    @get("/{session_id:uuid}/handoffs")
    async def list_handoffs(
        self, session_id: FromPath[UUID], user: CurrentUser, handoffs: NamedDependency[HandoffService]
    ) -> list[HandoffOut]:
        """The session's handoffs, newest first."""
        return [HandoffOut.of(h) for h in await handoffs.list_for_session(user, session_id)]

    @get("/{session_id:uuid}/handoffs/{handoff_id:uuid}")
    async def get_handoff(
        self,
        session_id: FromPath[UUID],
        handoff_id: FromPath[UUID],
        user: CurrentUser,
        handoffs: NamedDependency[HandoffService],
    ) -> HandoffOut:
        """One handoff, with its assessment when ready."""
        return HandoffOut.of(await handoffs.get(user, session_id, handoff_id))

    @post(
        "/{session_id:uuid}/handoffs/{handoff_id:uuid}/claim",
        status_code=200,
        guards=[requires_role(Role.engineer, "pick up handoffs")],
        responses={
            409: ResponseSpec(data_container=ClaimConflict, description="Someone else claimed it first")
        },
    )
    async def claim(
        self,
        session_id: FromPath[UUID],
        handoff_id: FromPath[UUID],
        user: CurrentUser,
        handoffs: NamedDependency[HandoffService],
    ) -> HandoffOut:
        """Pick up an open handoff. Exactly one of any number of concurrent claims wins."""
        return HandoffOut.of(await handoffs.claim(user, session_id, handoff_id))

    @post(
        "/{session_id:uuid}/handoffs/{handoff_id:uuid}/release",
        status_code=200,
        guards=[requires_role(Role.engineer, "release handoffs")],
    )
    async def release(
        self,
        session_id: FromPath[UUID],
        handoff_id: FromPath[UUID],
        user: CurrentUser,
        handoffs: NamedDependency[HandoffService],
    ) -> HandoffOut:
        """Put a claimed handoff back in the queue (its claimer, or an admin/owner)."""
        return HandoffOut.of(await handoffs.release(user, session_id, handoff_id))

    @get("/queue", guards=[requires_role(Role.engineer, "see the escalation queue")])
    async def queue(self, user: CurrentUser, handoffs: NamedDependency[HandoffService]) -> list[QueueItem]:
        """The account's open handoffs, most urgent then oldest first."""
        return await handoffs.queue(user)
