"""HTTP surface of a handoff's life: hand-off, claim, release, reassign, resolve, withdraw,
comments, timeline, similar past handoffs, the team queue and the account-wide search."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from handoffs.deps import CurrentUser, DbSession
from handoffs.domain.handoffs.assessment import AssessmentRetry, partial_of
from handoffs.domain.handoffs.comments import HandoffComments
from handoffs.domain.handoffs.lifecycle import HandoffLifecycle
from handoffs.domain.handoffs.schemas import (
    ClaimConflict,
    CommentCreate,
    CommentOut,
    HandOffConflict,
    HandoffCreate,
    HandoffOut,
    HandoffPage,
    QueueItem,
    ReassignBody,
    ReleaseBody,
    ResolveBody,
    SimilarHandoff,
    StateConflict,
    TimelineEntryOut,
    WithdrawBody,
)
from handoffs.domain.handoffs.search import QueueFilters, SearchFilters, read_queue, search_handoffs
from handoffs.domain.handoffs.service import HandoffService
from handoffs.domain.handoffs.similar import hand_off_answer, handoff_answer, similar_to
from handoffs.domain.handoffs.timeline import read_timeline
from handoffs.domain.text import TextQuery
from handoffs.enums import HandoffIntent, HandoffState, Priority, Role
from handoffs.errors import BadRequest
from handoffs.outbox.relay import OutboxRelay
from handoffs.runtime import Runtime
from handoffs.security.auth import requires_role


def provide_handoff_service(db_session: DbSession, relay: NamedDependency[OutboxRelay]) -> HandoffService:
    return HandoffService(db_session, relay)


def provide_lifecycle(db_session: DbSession, relay: NamedDependency[OutboxRelay]) -> HandoffLifecycle:
    return HandoffLifecycle(db_session, relay)


def provide_assessment_retry(db_session: DbSession, relay: NamedDependency[OutboxRelay]) -> AssessmentRetry:
    return AssessmentRetry(db_session, relay)


def provide_comments(db_session: DbSession, relay: NamedDependency[OutboxRelay]) -> HandoffComments:
    return HandoffComments(db_session, relay)


HANDOFF = "/{session_id:uuid}/handoffs/{handoff_id:uuid}"
#: The refusals every transition documents: who may not (403), what is not there (404), a state
#: that does not allow it or a race lost to a concurrent change (409, naming the state now).
TRANSITION_RESPONSES = {
    409: ResponseSpec(
        data_container=StateConflict,
        generate_examples=False,
        description="Not in a state that allows it, or changed meanwhile",
    ),
}


class HandoffController(Controller):
    path = "/api/v1/ai-sessions"
    tags = ["handoffs"]
    dependencies = {
        "handoffs": Provide(provide_handoff_service, sync_to_thread=False),
        "lifecycle": Provide(provide_lifecycle, sync_to_thread=False),
        "comments": Provide(provide_comments, sync_to_thread=False),
        "assessment": Provide(provide_assessment_retry, sync_to_thread=False),
    }

    @post(
        "/{session_id:uuid}/handoff",
        guards=[requires_role(Role.engineer, "hand off sessions")],
        responses={
            409: ResponseSpec(
                data_container=HandOffConflict,
                generate_examples=False,
                description="The session already has an open handoff, or one a colleague is working on",
            )
        },
    )
    async def hand_off(
        self,
        session_id: FromPath[UUID],
        data: JSONBody[HandoffCreate],
        user: CurrentUser,
        handoffs: NamedDependency[HandoffService],
    ) -> HandoffOut:
        """Park or escalate the caller's session. Returns at once; AI, email and PSA work follow."""
        return await hand_off_answer(handoffs.db, await handoffs.hand_off(user, session_id, data))

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
        runtime: NamedDependency[Runtime],
    ) -> HandoffOut:
        """One handoff, with its assessment when ready (what the model has written so far while it is
        pending: ``ai_assessment_partial``) and who resolved similar ones."""
        handoff = await handoffs.get(user, session_id, handoff_id)
        out = await handoff_answer(handoffs.db, handoff)
        out.ai_assessment_partial = await partial_of(runtime.bus, handoff)
        return out

    @post(
        f"{HANDOFF}/assessment/retry",
        status_code=202,
        guards=[requires_role(Role.engineer, "ask the AI again")],
        responses={
            409: ResponseSpec(
                data_container=StateConflict,
                generate_examples=False,
                description="An assessment is being made, the handoff is parked (none is made) or resolved",
            )
        },
    )
    async def retry_assessment(
        self,
        session_id: FromPath[UUID],
        handoff_id: FromPath[UUID],
        user: CurrentUser,
        assessment: NamedDependency[AssessmentRetry],
    ) -> HandoffOut:
        """Run the AI assessment again (after a failure or an offline stand-in). The handoff answers
        ``assessment_status: pending``; deltas and ``handoff_assessment_ready`` follow on the stream."""
        return HandoffOut.of(await assessment.retry(user, session_id, handoff_id))

    @post(
        f"{HANDOFF}/claim",
        status_code=200,
        guards=[requires_role(Role.engineer, "pick up handoffs")],
        responses={
            409: ResponseSpec(
                data_container=ClaimConflict,
                generate_examples=False,
                description="Someone else claimed it first, or it is resolved",
            )
        },
    )
    async def claim(
        self,
        session_id: FromPath[UUID],
        handoff_id: FromPath[UUID],
        user: CurrentUser,
        lifecycle: NamedDependency[HandoffLifecycle],
    ) -> HandoffOut:
        """Pick up an open handoff. Exactly one of any number of concurrent claims wins."""
        return HandoffOut.of(await lifecycle.claim(user, session_id, handoff_id))

    @post(
        f"{HANDOFF}/release",
        status_code=200,
        guards=[requires_role(Role.engineer, "release handoffs")],
        responses=TRANSITION_RESPONSES,
    )
    async def release(
        self,
        session_id: FromPath[UUID],
        handoff_id: FromPath[UUID],
        user: CurrentUser,
        lifecycle: NamedDependency[HandoffLifecycle],
        data: JSONBody[ReleaseBody | None] = None,
    ) -> HandoffOut:
        """Put a claimed handoff back in the queue (its claimer, or an admin/owner), with an optional reason."""
        return HandoffOut.of(await lifecycle.release(user, session_id, handoff_id, data))

    @post(
        f"{HANDOFF}/reassign",
        status_code=200,
        guards=[requires_role(Role.engineer, "reassign handoffs")],
        responses=TRANSITION_RESPONSES,
    )
    async def reassign(
        self,
        session_id: FromPath[UUID],
        handoff_id: FromPath[UUID],
        data: JSONBody[ReassignBody],
        user: CurrentUser,
        lifecycle: NamedDependency[HandoffLifecycle],
    ) -> HandoffOut:
        """Hand a claimed handoff to a colleague (its claimer, or an admin/owner); they are told."""
        return HandoffOut.of(await lifecycle.reassign(user, session_id, handoff_id, data))

    @post(
        f"{HANDOFF}/resolve",
        status_code=200,
        guards=[requires_role(Role.engineer, "resolve handoffs")],
        responses=TRANSITION_RESPONSES,
    )
    async def resolve(
        self,
        session_id: FromPath[UUID],
        handoff_id: FromPath[UUID],
        data: JSONBody[ResolveBody],
        user: CurrentUser,
        lifecycle: NamedDependency[HandoffLifecycle],
    ) -> HandoffOut:
        """Close a claimed handoff with its resolution; the junior hears back, the PSA ticket gets it."""
        return HandoffOut.of(await lifecycle.resolve(user, session_id, handoff_id, data))

    @post(
        f"{HANDOFF}/withdraw",
        status_code=200,
        guards=[requires_role(Role.engineer, "withdraw handoffs")],
        responses=TRANSITION_RESPONSES,
    )
    async def withdraw(
        self,
        session_id: FromPath[UUID],
        handoff_id: FromPath[UUID],
        user: CurrentUser,
        lifecycle: NamedDependency[HandoffLifecycle],
        data: JSONBody[WithdrawBody | None] = None,
    ) -> HandoffOut:
        """Take back your own open handoff (fixed it meanwhile): resolved, outcome ``withdrawn``."""
        return HandoffOut.of(await lifecycle.withdraw(user, session_id, handoff_id, data))

    @get(f"{HANDOFF}/comments")
    async def list_comments(
        self,
        session_id: FromPath[UUID],
        handoff_id: FromPath[UUID],
        user: CurrentUser,
        comments: NamedDependency[HandoffComments],
    ) -> list[CommentOut]:
        """The handoff's comments, oldest first."""
        return await comments.list(user, session_id, handoff_id)

    @post(f"{HANDOFF}/comments", guards=[requires_role(Role.engineer, "comment on handoffs")])
    async def add_comment(
        self,
        session_id: FromPath[UUID],
        handoff_id: FromPath[UUID],
        data: JSONBody[CommentCreate],
        user: CurrentUser,
        comments: NamedDependency[HandoffComments],
    ) -> CommentOut:
        """Comment on a handoff; the other side (creator or claimer) is told."""
        return await comments.add(user, session_id, handoff_id, data)

    @get(f"{HANDOFF}/timeline")
    async def timeline(
        self,
        session_id: FromPath[UUID],
        handoff_id: FromPath[UUID],
        user: CurrentUser,
        handoffs: NamedDependency[HandoffService],
    ) -> list[TimelineEntryOut]:
        """Who did what to the handoff, and what the workers did, oldest first."""
        handoff = await handoffs.get(user, session_id, handoff_id)
        return await read_timeline(handoffs.db, user.account_id, handoff.id)

    @get(f"{HANDOFF}/similar")
    async def similar(
        self,
        session_id: FromPath[UUID],
        handoff_id: FromPath[UUID],
        user: CurrentUser,
        handoffs: NamedDependency[HandoffService],
    ) -> list[SimilarHandoff]:
        """Up to 5 resolved handoffs of the account most like this one, best first, with how they
        were fixed and by whom (full-text rank, 0..1). Whoever can read the handoff reads these."""
        handoff = await handoffs.get(user, session_id, handoff_id)
        return await similar_to(handoffs.db, handoff)

    @get("/queue", guards=[requires_role(Role.engineer, "see the escalation queue")])
    async def queue(
        self,
        user: CurrentUser,
        db_session: DbSession,
        priority: FromQuery[Priority | None] = None,
        intent: FromQuery[HandoffIntent | None] = None,
        q: TextQuery = None,
        mine: FromQuery[bool] = False,
    ) -> list[QueueItem]:
        """The account's open handoffs, most urgent then oldest first; ``mine=true``: those raised for you."""
        return await read_queue(db_session, user, QueueFilters(priority, intent, q, mine))


class HandoffSearchController(Controller):
    path = "/api/v1/handoffs"
    tags = ["handoffs"]

    @get("/")
    async def search(
        self,
        user: CurrentUser,
        db_session: DbSession,
        # ``state`` is a name Litestar reserves for the app state; the query parameter keeps it.
        state_: Annotated[HandoffState | None, QueryParameter(name="state")] = None,
        claimed_by: TextQuery = None,
        priority: FromQuery[Priority | None] = None,
        q: TextQuery = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 50,
        cursor: TextQuery = None,
    ) -> HandoffPage:
        """The account's handoffs, newest first (viewers included): filter by state, claimer
        (``me`` or an id), priority and full-text ``q``; page with ``next_cursor``."""
        claimer: UUID | None = None
        if claimed_by == "me":
            claimer = user.id
        elif claimed_by:
            try:
                claimer = UUID(claimed_by)
            except ValueError:
                raise BadRequest("claimed_by: 'me' or a user id") from None
        filters = SearchFilters(state_, claimer, priority, q, limit, cursor)
        return await search_handoffs(db_session, user, filters)
