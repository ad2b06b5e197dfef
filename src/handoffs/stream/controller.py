"""HTTP surface of the live escalation stream (``text/event-stream``)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import Stream

from handoffs.config import Settings
from handoffs.domain.text import NO_CONTROLS
from handoffs.enums import Role
from handoffs.events import HANDOFF_EVENT_TYPES
from handoffs.security.auth import current_user, requires_role
from handoffs.stream.client_stream import event_stream
from handoffs.stream.hub import EventHub

#: Response headers: no caching, and no buffering by a reverse proxy (nginx honours the second).
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class EscalationStreamController(Controller):
    path = "/api/v1/ai-sessions/escalations/stream"
    tags = ["live stream"]
    guards = [requires_role(Role.engineer, "subscribe to the live escalation stream")]

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
            "idle connections open."
        ),
    )
    async def stream(
        self,
        request: Request[Any, Any, Any],
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
        account_id = str(current_user(request).account_id)
        resume_from = last_event_id_header or last_event_id
        return Stream(
            event_stream(hub, account_id, resume_from, retry_ms=settings.sse_retry_ms),
            media_type="text/event-stream",
            headers=STREAM_HEADERS,
        )
