"""HTTP surface of the live escalation stream (``text/event-stream``)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.exceptions import TooManyRequestsException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import Stream
from litestar.security.jwt import Token

from handoffs.config import Settings
from handoffs.db.models import User
from handoffs.domain.notifications.titles import duration
from handoffs.domain.text import NO_CONTROLS
from handoffs.errors import Detail
from handoffs.events import HANDOFF_EVENT_TYPES
from handoffs.security.auth import current_user, requires_role
from handoffs.stream.client_stream import event_stream
from handoffs.stream.guard import STREAM_ROLE, StreamOwner
from handoffs.stream.hub import EventHub

STREAM_PATH = "/api/v1/ai-sessions/escalations/stream"

#: Response headers: no caching, and no buffering by a reverse proxy (nginx honours the second).
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class EscalationStreamController(Controller):
    path = STREAM_PATH
    tags = ["live stream"]
    guards = [requires_role(STREAM_ROLE, "subscribe to the live escalation stream")]

    @get(
        "/",
        media_type="text/event-stream",
        summary="Live escalation events of the caller's account",
        description=(
            "Server-sent events: `ready` first, then "
            + ", ".join(f"`{name}`" for name in HANDOFF_EVENT_TYPES)
            + " of the caller's account, from any replica or worker."
            " Every event has an `id`; reconnect with the `Last-Event-ID` header "
            "(or `last_event_id` on a first connection) to receive what was missed. A `resync` event "
            "means events were lost for this client: reload the queue. `: keepalive` comments keep "
            "idle connections open. `access_ended` (then the stream closes) means the caller may no "
            "longer read it (signed out, token expired, deactivated, role changed): do not reconnect "
            "with the same credentials. At most `SSE_MAX_STREAMS_PER_USER` open streams per user."
        ),
        responses={
            429: ResponseSpec(
                data_container=Detail,
                description="The user has the most open streams allowed; see Retry-After",
            )
        },
    )
    async def stream(
        self,
        request: Request[User, Token, Any],
        hub: NamedDependency[EventHub],
        settings: NamedDependency[Settings],
        last_event_id_header: Annotated[
            str | None,
            HeaderParameter(name="last-event-id", description="The id of the last event received."),
        ] = None,
        last_event_id: Annotated[
            str | None,
            QueryParameter(
                name="last_event_id",
                description="The same as the `Last-Event-ID` header, for a first connection.",
                pattern=NO_CONTROLS,
            ),
        ] = None,
    ) -> Stream:
        # The account comes from the signed-in user, never from the request.
        # Read it now: the request's database session closes as the response starts.
        user = current_user(request)
        account_id = str(user.account_id)
        owner = StreamOwner.of(user.id, request.auth)
        wait = await hub.admit(owner)
        if wait is not None:
            raise TooManyRequestsException(
                f"You have {settings.sse_max_streams_per_user} live streams open, the most one user may"
                f" have. Close one (a console tab or a script) or try again in {duration(wait)}.",
                headers={"Retry-After": str(wait)},
            )
        resume_from = last_event_id_header or last_event_id
        return Stream(
            event_stream(hub, account_id, resume_from, retry_ms=settings.sse_retry_ms, owner=owner),
            media_type="text/event-stream",
            headers=STREAM_HEADERS,
        )
