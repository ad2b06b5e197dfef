"""``GET /api/v1/metrics/handoffs``: the team figures of the caller's account (engineer and up)."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Controller, get

from handoffs.deps import CurrentUser, DbSession
from handoffs.domain.figures.schemas import TeamFigures
from handoffs.domain.figures.service import parse_window, read_figures
from handoffs.domain.text import TextQuery
from handoffs.enums import Role
from handoffs.security.auth import requires_role


class TeamFiguresController(Controller):
    path = "/api/v1/metrics"
    tags = ["figures"]
    guards = [requires_role(Role.engineer, "read the team figures")]

    @get("/handoffs")
    async def handoff_figures(
        self,
        user: CurrentUser,
        db_session: DbSession,
        since: TextQuery = None,
        until: TextQuery = None,
    ) -> TeamFigures:
        """How the account's handoffs created in ``[since, until)`` went (RFC 3339, default the
        last 7 days, at most 366): counts, times to claim and resolve, by priority and engineer."""
        window = parse_window(since, until, datetime.now(UTC))
        return await read_figures(db_session, user, window)
