"""The console's pages: thin handlers that render templates from :class:`~handoffs.web.views.ConsoleViews`.

Everything the pages change goes through the JSON API (from console.js, with
the session cookie and the CSRF header); these handlers only read. A page
request without a valid session redirects to ``/login``; the API keeps its
JSON 401.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote
from uuid import UUID

from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Template

from handoffs.deps import CurrentUser, DbSession
from handoffs.domain.text import NO_CONTROLS, TextQuery
from handoffs.enums import HandoffState
from handoffs.errors import DomainError
from handoffs.events import EventBus
from handoffs.runtime import STATE_KEY, Runtime
from handoffs.web.views import ConsoleViews

#: Sent with every page: pages hold tenant data (no caching, no framing) and load
#: only the app's own scripts and styles.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

Part = Literal["status", "assessment", "documentation", "timeline", "comments"]


def provide_bus(state: State) -> EventBus | None:
    runtime: Runtime | None = state.get(STATE_KEY)
    return None if runtime is None else runtime.bus


def provide_views(
    db_session: DbSession, user: CurrentUser, bus: NamedDependency[EventBus | None]
) -> ConsoleViews:
    return ConsoleViews(db_session, user, bus)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (never ``//host`` or a URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def redirect_to_login(request: Request[Any, Any, Any], _: NotAuthorizedException) -> Response[Any]:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Redirect(f"/login?next={quote(here, safe='/')}", status_code=303, headers=PAGE_HEADERS)


def error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    status = getattr(exc, "status_code", 500)
    messages = {
        400: ("That address is not quite right", "Check the link and try again."),
        403: ("Not for your role", "Your role may not open this page."),
        404: ("Not found", "This page does not exist, or it belongs to someone you cannot see."),
    }
    title, text = messages.get(status, ("Something went wrong", "Reload the page to try again."))
    return Template(
        "error.html.j2",
        context={"status": status, "title": title, "text": text},
        status_code=status,
        headers=PAGE_HEADERS,
    )


class ConsoleController(Controller):
    path = "/"
    include_in_schema = False
    dependencies = {
        "bus": Provide(provide_bus, sync_to_thread=False),
        "views": Provide(provide_views, sync_to_thread=False),
    }
    response_headers = PAGE_HEADERS
    exception_handlers = {
        NotAuthorizedException: redirect_to_login,
        PermissionDeniedException: error_page,
        NotFoundException: error_page,
        ValidationException: error_page,
        DomainError: error_page,
        HTTPException: error_page,
    }

    @get("/login", opt={"exclude_from_auth": True})
    async def login(
        self, next_: Annotated[str | None, QueryParameter(name="next", pattern=NO_CONTROLS)] = None
    ) -> Template:
        """The sign-in form; it posts to ``/api/v1/auth/session`` and follows ``next``."""
        return Template("login.html.j2", context={"next": safe_next(next_)})

    @get("/")
    async def console(self, views: NamedDependency[ConsoleViews]) -> Template:
        """The console: the escalation queue (engineers and up), the sessions sidebar, the bell."""
        return Template("console.html.j2", context=await views.console())

    @get("/sessions/{session_id:uuid}")
    async def session(self, session_id: FromPath[UUID], views: NamedDependency[ConsoleViews]) -> Template:
        """A session: its transcript, and Park / Escalate for its owner."""
        return Template("session.html.j2", context=await views.session_page(session_id))

    @get("/sessions/{session_id:uuid}/handoffs/{handoff_id:uuid}")
    async def handoff(
        self, session_id: FromPath[UUID], handoff_id: FromPath[UUID], views: NamedDependency[ConsoleViews]
    ) -> Template:
        """The handoff context screen: transcript, notes, ticket, documentation, AI assessment."""
        return Template("handoff.html.j2", context=await views.handoff_page(session_id, handoff_id))

    @get("/sessions/{session_id:uuid}/handoffs/{handoff_id:uuid}/parts/{part:str}")
    async def handoff_part(
        self,
        session_id: FromPath[UUID],
        handoff_id: FromPath[UUID],
        part: FromPath[Part],
        views: NamedDependency[ConsoleViews],
    ) -> Template:
        """One live part of the context screen, re-rendered when its stream event arrives."""
        context = await views.handoff_parts(session_id, handoff_id)
        if part == "comments":
            context["comments"] = await views.comments_of(session_id, context["handoff"])
        return Template(f"parts/{part}.html.j2", context=context)

    @get("/sessions/{session_id:uuid}/parts/state")
    async def session_state(
        self, session_id: FromPath[UUID], views: NamedDependency[ConsoleViews]
    ) -> Template:
        """The session page's handoff state (notice, status pill, handoffs list), from one read."""
        return Template("parts/session_state.html.j2", context=await views.session_state(session_id))

    @get("/handoffs")
    async def handoffs(
        self,
        views: NamedDependency[ConsoleViews],
        state_: Annotated[str | None, QueryParameter(name="state", pattern=NO_CONTROLS)] = None,
        q: TextQuery = None,
        cursor: TextQuery = None,
    ) -> Template:
        """The account's handoffs, newest first, for every role (viewers read them here)."""
        # The filter form sends ``state=`` for "any state"; an unknown value reads as any too.
        state = HandoffState(state_) if state_ in set(HandoffState) else None
        return Template(
            "handoffs.html.j2", context=await views.handoffs_list(state=state, q=q, cursor=cursor)
        )

    @get("/settings")
    async def settings_page(self, views: NamedDependency[ConsoleViews]) -> Template:
        """The account's settings (admins and owners): the escalation policy and chat notifications."""
        return Template("settings.html.j2", context=await views.settings_page())

    @get("/team")
    async def team(self, views: NamedDependency[ConsoleViews], days: FromQuery[int] = 7) -> Template:
        """The team figures of the last 7 or 30 days, with two charts drawn by the server."""
        return Template("team.html.j2", context=await views.team_page(days))

    @get("/parts/ladder")
    async def ladder(self, views: NamedDependency[ConsoleViews]) -> dict[str, Any]:
        """Where each open escalation is on the ladder (JSON), for the queue after it re-reads itself."""
        return await views.ladder_part()

    @get("/parts/sidebar")
    async def sidebar(
        self, views: NamedDependency[ConsoleViews], current: FromQuery[UUID | None] = None
    ) -> Template:
        """The sessions sidebar, re-rendered when one of its sessions changes."""
        return Template("parts/sidebar.html.j2", context=await views.sidebar(current))
