"""Team figures: two fixed-shape statements over one account's handoffs of a period.

Every figure is an aggregate with a ``FILTER`` clause, computed by PostgreSQL in
one pass over the period's rows (never a Python loop over them). Both statements
start ``WHERE account_id = :a AND created_at >= :since AND created_at < :until``,
a range scan of ``ix_handoffs_account_created (account_id, created_at DESC, id DESC)``;
``unclaimed_now`` reads the partial queue index ``ix_handoffs_queue``. A test puts
a year of handoffs in the account and EXPLAINs both statements for a 7-day window.
Definitions (who counts as claimer, resolver, what is excluded): docs/team-figures.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Double, Select, and_, cast, extract, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from handoffs.db.models import SessionHandoff, User
from handoffs.domain.figures.schemas import Durations, EngineerFigures, PriorityFigures, TeamFigures
from handoffs.domain.rows import Person
from handoffs.enums import HandoffIntent, HandoffState, Outcome, Priority
from handoffs.errors import BadRequest

DEFAULT_WINDOW = timedelta(days=7)
MAX_WINDOW = timedelta(days=366)

#: RFC 3339 ``date-time``: full date, ``T`` (or a space), full time, optional fraction, then the
#: offset. The offset is optional here only so that a time without one gets its own 400.
#: A space before the offset is a ``+`` that the query string decoded (``+`` means space there).
_RFC3339 = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?)"
    r"(?P<offset>[Zz]|[+\- ]\d{2}:\d{2})?$"
)

H = SessionHandoff


@dataclass(frozen=True, slots=True)
class Window:
    """``[since, until)``, both aware and in UTC."""

    since: datetime
    until: datetime


def parse_time(name: str, value: str) -> datetime:
    """An RFC 3339 time with its offset, as an aware UTC datetime; a clear 400 otherwise."""
    match = _RFC3339.match(value.strip())
    example = "e.g. 2025-03-01T09:00:00Z or 2025-03-01T10:00:00%2B01:00"
    if match is None:
        raise BadRequest(f"{name}: not an RFC 3339 time ({example})")
    offset = match["offset"]
    if offset is None:
        raise BadRequest(f"{name}: give the time zone offset ('Z' for UTC, {example})")
    if offset in ("Z", "z"):
        offset = "+00:00"
    elif offset.startswith(" "):
        offset = "+" + offset[1:]
    # Python takes at most 6 fractional digits: nanoseconds are cut to microseconds.
    clock = match["time"]
    if "." in clock:
        whole, fraction = clock.split(".")
        clock = f"{whole}.{fraction[:6]:0<6}"
    try:
        return datetime.fromisoformat(f"{match['date']}T{clock}{offset}").astimezone(UTC)
    except (ValueError, OverflowError):  # Feb 30, 24:00, a leap second, year 0 or past 9999 in UTC
        raise BadRequest(f"{name}: not a valid date and time ({example})") from None


def parse_window(since: str | None, until: str | None, now: datetime) -> Window:
    """``until`` defaults to now, ``since`` to 7 days before ``until``; at most 366 days."""
    end = parse_time("until", until) if until else now
    try:
        start = parse_time("since", since) if since else end - DEFAULT_WINDOW
    except OverflowError:  # `until` in the first week of year 1
        raise BadRequest("until: too early to count 7 days back from; give since as well") from None
    if start >= end:
        raise BadRequest(f"since ({start.isoformat()}) must be before until ({end.isoformat()})")
    if end - start > MAX_WINDOW:
        raise BadRequest(
            f"The period ({end - start}) is longer than 366 days; ask for at most 366 days at a time"
        )
    return Window(start, end)


def _seconds(start: QueryableAttribute[Any], end: QueryableAttribute[Any]) -> ColumnElement[float]:
    return cast(extract("epoch", end - start), Double)


#: Time to a first claim (kept across release) and to the resolution.
TIME_TO_CLAIM = _seconds(H.created_at, H.first_claimed_at)
TIME_TO_RESOLVE = _seconds(H.created_at, H.resolved_at)
#: Resolved by an engineer: a withdrawn handoff is resolved by its creator and counted apart.
RESOLVED = and_(H.state == HandoffState.resolved, H.outcome.is_distinct_from(Outcome.withdrawn))
WITHDRAWN = and_(H.state == HandoffState.resolved, H.outcome == Outcome.withdrawn)
ESCALATION = H.intent == HandoffIntent.escalate


def _in_window(account_id: UUID, window: Window) -> ColumnElement[bool]:
    return and_(H.account_id == account_id, H.created_at >= window.since, H.created_at < window.until)


def _p(fraction: float, value: ColumnElement[float], where: ColumnElement[bool]) -> ColumnElement[float]:
    return func.percentile_cont(fraction).within_group(value).filter(where)


def totals_statement(account_id: UUID, window: Window) -> Select[Any]:
    """One row: the period's counts, percentiles and per-priority figures, and ``unclaimed_now``."""
    claimed = H.first_claimed_at.is_not(None)
    unclaimed_now = (
        select(func.count())
        .select_from(H)
        .where(H.account_id == account_id, H.state == HandoffState.open, ESCALATION)
        .scalar_subquery()
    )
    columns: list[ColumnElement[Any]] = [
        func.count().filter(ESCALATION).label("escalations"),
        func.count().filter(H.intent == HandoffIntent.park).label("parked"),
        func.count().filter(claimed).label("claimed"),
        func.count().filter(RESOLVED).label("resolved"),
        func.count().filter(WITHDRAWN).label("withdrawn"),
        unclaimed_now.label("unclaimed_now"),
        _p(0.5, TIME_TO_CLAIM, claimed).label("claim_p50"),
        _p(0.9, TIME_TO_CLAIM, claimed).label("claim_p90"),
        func.max(TIME_TO_CLAIM).label("claim_max"),
        _p(0.5, TIME_TO_RESOLVE, RESOLVED).label("resolve_p50"),
        _p(0.9, TIME_TO_RESOLVE, RESOLVED).label("resolve_p90"),
        func.max(TIME_TO_RESOLVE).filter(RESOLVED).label("resolve_max"),
        func.coalesce(func.sum(H.escalation_level), 0).label("ladder_steps"),
        func.coalesce(func.sum(H.ai_cost_usd), 0).label("ai_cost_usd"),
    ]
    for priority in Priority:
        of_priority = and_(ESCALATION, H.priority == priority)
        columns.append(func.count().filter(of_priority).label(f"{priority.value}_escalations"))
        columns.append(
            _p(0.5, TIME_TO_CLAIM, and_(of_priority, claimed)).label(f"{priority.value}_claim_p50")
        )
    return select(*columns).select_from(H).where(_in_window(account_id, window))


def engineers_statement(account_id: UUID, window: Window) -> Select[Any]:
    """One row per engineer who holds (``claimed_by``) or resolved (``resolved_by``) a handoff
    of the period; most resolved first, then by name.

    The period is grouped by claimer and by resolver apart, then the few groups are joined to
    their names: an admin who resolved for a claimer, or a colleague it was reassigned to, is
    counted, and the period is read twice whatever the size of the team (a join of users to
    handoffs on "claimer or resolver" cannot hash, and reads the period once per user). The
    time to claim is over the handoffs the engineer claimed first and kept (``claimed_at =
    first_claimed_at``): a handoff given to them by reassign, or claimed again after a
    release, does not say how fast they picked it up.
    """
    claims = (
        select(
            H.claimed_by.label("user_id"),
            func.count().label("claimed"),
            _p(0.5, TIME_TO_CLAIM, H.claimed_at == H.first_claimed_at).label("claim_p50"),
        )
        .where(_in_window(account_id, window), H.claimed_by.is_not(None))
        .group_by(H.claimed_by)
        .subquery("claims")
    )
    resolutions = (
        select(H.resolved_by.label("user_id"), func.count().label("resolved"))
        .where(_in_window(account_id, window), RESOLVED, H.resolved_by.is_not(None))
        .group_by(H.resolved_by)
        .subquery("resolutions")
    )
    resolved = func.coalesce(resolutions.c.resolved, 0)
    return (
        select(
            User.id,
            User.name,
            func.coalesce(claims.c.claimed, 0).label("claimed"),
            resolved.label("resolved"),
            claims.c.claim_p50,
        )
        .outerjoin(claims, claims.c.user_id == User.id)
        .outerjoin(resolutions, resolutions.c.user_id == User.id)
        .where(
            User.account_id == account_id,
            or_(claims.c.user_id.is_not(None), resolutions.c.user_id.is_not(None)),
        )
        .order_by(resolved.desc(), User.name, User.id)
    )


def _rounded(value: float | None) -> float | None:
    # Interpolation in double precision leaves 263.99999999999997 for 264: millisecond precision.
    return None if value is None else round(value, 3)


async def read_figures(db: AsyncSession, user: User, window: Window) -> TeamFigures:
    """The figures of the caller's account for ``window``."""
    t = (await db.execute(totals_statement(user.account_id, window))).one()._mapping
    engineers = (await db.execute(engineers_statement(user.account_id, window))).all()
    return TeamFigures(
        since=window.since,
        until=window.until,
        escalations=t["escalations"],
        parked=t["parked"],
        claimed=t["claimed"],
        resolved=t["resolved"],
        withdrawn=t["withdrawn"],
        unclaimed_now=t["unclaimed_now"],
        time_to_claim_seconds=Durations(
            _rounded(t["claim_p50"]), _rounded(t["claim_p90"]), _rounded(t["claim_max"])
        ),
        time_to_resolve_seconds=Durations(
            _rounded(t["resolve_p50"]), _rounded(t["resolve_p90"]), _rounded(t["resolve_max"])
        ),
        by_priority={
            p: PriorityFigures(t[f"{p.value}_escalations"], _rounded(t[f"{p.value}_claim_p50"]))
            for p in Priority
        },
        by_engineer=[
            EngineerFigures(
                Person(id=row.id, name=row.name), row.claimed, row.resolved, _rounded(row.claim_p50)
            )
            for row in engineers
        ],
        ladder_steps=int(t["ladder_steps"]),
        ai_cost_usd=round(float(t["ai_cost_usd"]), 6),
    )
