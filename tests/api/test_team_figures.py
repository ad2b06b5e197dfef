"""Team figures: counts, interpolated percentiles, the period's bounds, roles, tenancy, the index.

Handoffs are made through the API; only their times (and ladder level) are then set in SQL, so
each expected figure is computed by hand from times the test chose.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from handoffs.domain.figures.service import Window, engineers_statement, totals_statement
from tests.conftest import Api
from tests.support.explain import Explain

FIGURES = "/api/v1/metrics/handoffs"
SINCE = datetime(2025, 3, 1, tzinfo=UTC)
UNTIL = datetime(2025, 3, 8, tzinfo=UTC)
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
PRIORITIES = ("low", "normal", "high", "urgent")


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def period(since: datetime = SINCE, until: datetime = UNTIL) -> str:
    return f"{FIGURES}?since={quote(iso(since))}&until={quote(iso(until))}"


async def figures(api: Api, who: str, path: str = FIGURES) -> dict[str, Any]:
    response = await api.call(who, "GET", path)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def set_times(
    db: AsyncSession,
    handoff: dict[str, Any],
    created: datetime,
    claim: float | None = None,
    resolve: float | None = None,
    held_since: float | None = None,
    level: int = 0,
) -> None:
    """Put a handoff at ``created``, first claimed ``claim`` s and resolved ``resolve`` s later;
    its current claim (``claimed_at``) from ``held_since`` s (default: the first claim)."""
    at = lambda s: None if s is None else created + timedelta(seconds=s)  # noqa: E731
    await db.execute(
        text(
            "UPDATE session_handoffs SET created_at = :created, first_claimed_at = :first, "
            "claimed_at = CASE WHEN claimed_by IS NULL THEN NULL ELSE CAST(:held AS timestamptz) END, "
            "resolved_at = CASE WHEN resolved_at IS NULL THEN NULL ELSE CAST(:resolved AS timestamptz) END, "
            "escalation_level = :level WHERE id = CAST(:id AS uuid)"
        ),
        {
            "id": handoff["id"],
            "created": created,
            "first": at(claim),
            "held": at(held_since if held_since is not None else claim),
            "resolved": at(resolve),
            "level": level,
        },
    )
    await db.commit()


def interpolated(values: list[float], fraction: float) -> float:
    """``percentile_cont`` by hand: linear between the two nearest ranks."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def empty_figures() -> dict[str, Any]:
    none = {"p50": None, "p90": None, "max": None}
    return {
        "escalations": 0, "parked": 0, "claimed": 0, "resolved": 0, "withdrawn": 0,
        "unclaimed_now": 0, "time_to_claim_seconds": none, "time_to_resolve_seconds": none,
        "by_priority": {p: {"escalations": 0, "time_to_claim_p50": None} for p in PRIORITIES},
        "by_engineer": [], "ladder_steps": 0, "ai_cost_usd": 0.0,
    }  # fmt: skip


def without_window(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("since", "until")}


# -- the figures, computed by hand ----------------------------------------------------------------


async def test_the_figures_of_a_period_are_the_hand_computed_counts_and_percentiles(
    api: Api, db: AsyncSession
) -> None:
    ada = str(api["ada"].id)
    # Sam claims at 60 s and resolves at 600 s.
    s1, h1 = await api.claimed("sam", priority="normal")
    await api.act("sam", s1, h1, "resolve", {"resolution": "x"})
    await set_times(db, h1, T0, claim=60, resolve=600)
    # Sam claims at 120 s; Ada (admin) resolves it for him at 1,200 s.
    s2, h2 = await api.claimed("sam", priority="high")
    await api.act("ada", s2, h2, "resolve", {"resolution": "x"})
    await set_times(db, h2, T0 + timedelta(hours=1), claim=120, resolve=1200)
    # Sam claims at 300 s, reassigns it to Ada at 500 s, who resolves it at 3,600 s.
    s3, h3 = await api.claimed("sam", priority="urgent")
    await api.act("sam", s3, h3, "reassign", {"to_user_id": ada})
    await api.act("ada", s3, h3, "resolve", {"resolution": "x", "outcome": "workaround"})
    await set_times(db, h3, T0 + timedelta(hours=2), claim=300, held_since=500, resolve=3600)
    # Jane withdraws one after 30 s: counted apart, in no time to resolve.
    s4, h4 = await api.escalated("jane", priority="normal")
    assert (await api.act("jane", s4, h4, "withdraw", {"reason": "fixed it"})).status_code == 200
    await set_times(db, h4, T0 + timedelta(hours=3), resolve=30)
    # A parked one nobody took, an open low escalation two ladder steps up.
    _, h5 = await api.escalated("jane", intent="park", priority="low")
    await set_times(db, h5, T0 + timedelta(hours=4))
    _, h6 = await api.escalated("jane", priority="low")
    await set_times(db, h6, T0 + timedelta(hours=5), level=2)
    # Olivia claims one after 900 s (one ladder step before) and is still on it.
    _, h7 = await api.claimed("olivia", priority="normal")
    await set_times(db, h7, T0 + timedelta(hours=6), claim=900, level=1)
    # An open escalation from today: not in the period, but unclaimed now.
    await api.escalated("jane")

    body = await figures(api, "sam", period())

    claims, resolutions = [60.0, 120.0, 300.0, 900.0], [600.0, 1200.0, 3600.0]
    assert (interpolated(claims, 0.5), interpolated(claims, 0.9)) == pytest.approx((210.0, 720.0))
    assert (interpolated(resolutions, 0.5), interpolated(resolutions, 0.9)) == pytest.approx((1200.0, 3120.0))
    assert body["since"] == "2025-03-01T00:00:00Z"
    assert body["until"] == "2025-03-08T00:00:00Z"
    assert without_window(body) == {
        "escalations": 6,  # h1, h2, h3, h4 (withdrawn), h6, h7
        "parked": 1,
        "claimed": 4,  # ever claimed: h1, h2, h3, h7
        "resolved": 3,  # h1, h2, h3; not the withdrawn h4
        "withdrawn": 1,
        "unclaimed_now": 2,  # h6 and today's escalation; the parked h5 is no escalation
        "time_to_claim_seconds": {"p50": 210.0, "p90": 720.0, "max": 900.0},
        "time_to_resolve_seconds": {"p50": 1200.0, "p90": 3120.0, "max": 3600.0},
        "by_priority": {
            "low": {"escalations": 1, "time_to_claim_p50": None},  # h6; the parked h5 is not counted
            "normal": {"escalations": 3, "time_to_claim_p50": 480.0},  # h1, h4, h7: median of 60, 900
            "high": {"escalations": 1, "time_to_claim_p50": 120.0},
            "urgent": {"escalations": 1, "time_to_claim_p50": 300.0},
        },
        "by_engineer": [
            # Holds h3 (given to her by reassign: no claim time of hers), resolved h2 and h3.
            {
                "user": {"id": ada, "name": "Ada Admin"},
                "claimed": 1,
                "resolved": 2,
                "time_to_claim_p50": None,
            },
            # Holds h1 and h2 (h2 resolved by Ada); h3 moved to Ada. Median of 60 and 120.
            {
                "user": {"id": str(api["sam"].id), "name": "Sam Senior"},
                "claimed": 2,
                "resolved": 1,
                "time_to_claim_p50": 90.0,
            },
            {
                "user": {"id": str(api["olivia"].id), "name": "Olivia Owner"},
                "claimed": 1,
                "resolved": 0,
                "time_to_claim_p50": 900.0,
            },
        ],
        "ladder_steps": 3,
        "ai_cost_usd": 0.0,
    }


async def test_claim_times_of_60_120_and_300_s_give_p50_120_and_p90_264(api: Api, db: AsyncSession) -> None:
    for i, seconds in enumerate([300, 60, 120]):
        _, handoff = await api.claimed("sam")
        await set_times(db, handoff, T0 + timedelta(minutes=i), claim=seconds)
    body = await figures(api, "sam", period())
    assert body["time_to_claim_seconds"] == {"p50": 120.0, "p90": 264.0, "max": 300.0}
    assert body["by_priority"]["normal"] == {"escalations": 3, "time_to_claim_p50": 120.0}
    assert body["time_to_resolve_seconds"] == {"p50": None, "p90": None, "max": None}
    assert body["by_engineer"] == [
        {"user": {"id": str(api["sam"].id), "name": "Sam Senior"}, "claimed": 3, "resolved": 0,
         "time_to_claim_p50": 120.0}
    ]  # fmt: skip


async def test_a_released_claim_keeps_the_first_claim_time_but_not_the_releaser(
    api: Api, db: AsyncSession
) -> None:
    session, handoff = await api.claimed("sam")
    await api.act("sam", session, handoff, "release", {"reason": "out of my depth"})
    await set_times(db, handoff, T0, claim=45)
    body = await figures(api, "sam", period())
    assert body["claimed"] == 1
    assert body["time_to_claim_seconds"] == {"p50": 45.0, "p90": 45.0, "max": 45.0}
    assert body["unclaimed_now"] == 1  # back in the queue
    assert body["by_engineer"] == []  # nobody holds or resolved it


async def test_an_account_without_handoffs_gets_zeros_and_nulls(api: Api) -> None:
    body = await figures(api, "sam")
    assert without_window(body) == empty_figures()


# -- the period -----------------------------------------------------------------------------------


async def test_since_is_inclusive_and_until_exclusive(api: Api, db: AsyncSession) -> None:
    tick = timedelta(microseconds=1)
    for created in (SINCE - tick, SINCE, UNTIL - tick, UNTIL):
        _, handoff = await api.escalated("jane")
        await set_times(db, handoff, created)
    assert (await figures(api, "sam", period()))["escalations"] == 2
    assert (await figures(api, "sam", period(SINCE - tick, UNTIL + tick)))["escalations"] == 4
    assert (await figures(api, "sam", period(SINCE + tick, UNTIL - tick)))["escalations"] == 0


async def test_the_default_period_is_the_last_seven_days(api: Api, db: AsyncSession) -> None:
    now = datetime.now(UTC)
    for age in (timedelta(minutes=1), timedelta(days=6, hours=23), timedelta(days=7, minutes=1)):
        _, handoff = await api.escalated("jane")
        await set_times(db, handoff, now - age)
    body = await figures(api, "sam")
    assert body["escalations"] == 2
    since, until = (datetime.fromisoformat(body[k]) for k in ("since", "until"))
    assert until - since == timedelta(days=7)
    assert abs(until - datetime.now(UTC)) < timedelta(minutes=1)
    # Either bound alone: the other is now, or seven days before `until`.
    alone = await figures(api, "sam", f"{FIGURES}?until={quote(iso(UNTIL))}")
    assert (alone["since"], alone["until"]) == ("2025-03-01T00:00:00Z", "2025-03-08T00:00:00Z")
    recent = await figures(api, "sam", f"{FIGURES}?since={quote(iso(now - timedelta(days=30)))}")
    assert recent["escalations"] == 3


async def test_offsets_other_than_utc_are_read_and_answered_in_utc(api: Api) -> None:
    # `+` must be sent as %2B; a bare `+` arrives as a space and is read as the `+` it was.
    for offset in ("%2B01:00", "+01:00"):
        body = await figures(
            api, "sam", f"{FIGURES}?since=2025-03-01T01:00:00{offset}&until=2025-03-08T00:00:00Z"
        )
        assert body["since"] == "2025-03-01T00:00:00Z"


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("since=yesterday", "since: not an RFC 3339 time"),
        ("until=2025-03-08", "until: not an RFC 3339 time"),
        ("since=2025-03-01T00:00:00", "since: give the time zone offset"),
        ("since=2025-02-30T00:00:00Z", "since: not a valid date and time"),
        ("since=2025-03-01T23:59:60Z", "since: not a valid date and time"),
        ("until=9999-12-31T23:59:59-01:00", "until: not a valid date and time"),
        ("until=0001-01-02T00:00:00Z", "until: too early"),
        ("since=2025-03-08T00:00:00Z&until=2025-03-01T00:00:00Z", "must be before until"),
        ("since=2025-03-01T00:00:00Z&until=2025-03-01T00:00:00Z", "must be before until"),
        ("since=2024-01-01T00:00:00Z&until=2025-01-02T00:00:00Z", "is longer than 366 days"),
        ("since=2000-01-01T00:00:00Z", "is longer than 366 days"),
    ],
)
async def test_a_bad_period_is_a_400_that_says_what_is_wrong(api: Api, query: str, says: str) -> None:
    response = await api.call("sam", "GET", f"{FIGURES}?{query}")
    assert response.status_code == 400, response.text
    assert says in response.json()["detail"]


async def test_a_period_of_exactly_366_days_is_accepted(api: Api) -> None:
    await figures(api, "sam", period(SINCE, SINCE + timedelta(days=366)))


# -- who may, and whose -----------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "status"), [("victor", 403), ("jane", 200), ("sam", 200),
                                             ("ada", 200), ("olivia", 200), ("gina", 200)])  # fmt: skip
async def test_engineers_and_up_read_the_figures_and_viewers_are_told_why_not(
    api: Api, who: str, status: int
) -> None:
    response = await api.call(who, "GET", FIGURES)
    assert response.status_code == status, response.text
    if status == 403:
        assert response.json()["detail"] == "Your role may not read the team figures."


async def test_signed_out_callers_get_401(api: Api) -> None:
    assert (await api.call(None, "GET", FIGURES)).status_code == 401


async def test_globex_figures_never_count_or_name_acme(api: Api) -> None:
    session, handoff = await api.claimed("sam")
    await api.act("sam", session, handoff, "resolve", {"resolution": "x"})
    await api.escalated("jane")  # open: Acme's unclaimed_now
    g_session, g_handoff = await api.escalated("gus")
    assert (await api.act("gina", g_session, g_handoff, "claim")).status_code == 200

    globex = await figures(api, "gus")
    assert (globex["escalations"], globex["claimed"], globex["resolved"], globex["unclaimed_now"]) == (
        1,
        1,
        0,
        0,
    )
    assert [e["user"]["name"] for e in globex["by_engineer"]] == ["Gina Globex"]
    acme_ids = {str(a.id) for a in api.actors.values() if a.account_id == api["sam"].account_id}
    said = str(globex)
    assert not any(i in said for i in acme_ids)
    assert "Sam Senior" not in said

    acme = await figures(api, "sam")
    assert (acme["escalations"], acme["claimed"], acme["resolved"], acme["unclaimed_now"]) == (2, 1, 1, 1)
    assert [e["user"]["name"] for e in acme["by_engineer"]] == ["Sam Senior"]


# -- a year of data ---------------------------------------------------------------------------------


#: One handoff every 1,576 s for 20,000 handoffs: a year. By ``n % 3``: never claimed (open in the
#: last ~11 days, withdrawn before: the queue is short), claimed (still held in the last ~11 days,
#: resolved after 3 h before), resolved after 2 h. Every tenth is parked.
YEAR = 20_000
EVERY = 1576
RECENT = 600


def fate(n: int) -> str:
    if n % 3 == 0:
        return "open" if n <= RECENT else "withdrawn"
    if n % 3 == 1 and n <= RECENT:
        return "claimed"
    return "resolved"


async def _a_year_of_handoffs(db: AsyncSession, session: dict[str, Any], handoff: dict[str, Any]) -> None:
    params = {"sid": session["id"], "hid": handoff["id"], "n": YEAR, "every": EVERY}
    await db.execute(
        text(
            "INSERT INTO ai_sessions (id, account_id, owner_id, title, problem_summary, psa_ticket_id, status, "
            "created_at, updated_at) "
            "SELECT md5('figures-' || n)::uuid, s.account_id, s.owner_id, s.title, s.problem_summary, "
            "s.psa_ticket_id, 'escalated', now() - n * make_interval(secs => :every), now() "
            "FROM ai_sessions s, generate_series(1, :n) AS n WHERE s.id = CAST(:sid AS uuid)"
        ),
        params,
    )
    await db.execute(
        text(
            """
            INSERT INTO session_handoffs (id, account_id, session_id, intent, engineer_notes, priority,
                created_by, session_snapshot, assessment_status, psa_sync_status, state, version,
                escalation_level, claimed_by, claimed_at, first_claimed_at, resolved_by, resolved_at,
                outcome, resolution, created_at, updated_at)
            SELECT gen_random_uuid(), h.account_id, md5('figures-' || n)::uuid,
                CASE WHEN n % 10 = 0 THEN 'park' ELSE 'escalate' END, '',
                (ARRAY['low', 'normal', 'high', 'urgent'])[1 + n % 4],
                h.created_by, h.session_snapshot, h.assessment_status, h.psa_sync_status,
                CASE WHEN t.fate IN ('open', 'claimed') THEN t.fate ELSE 'resolved' END, 1, n % 3,
                CASE WHEN t.fate IN ('claimed', 'resolved') THEN CAST(:sam AS uuid) END,
                CASE WHEN t.fate IN ('claimed', 'resolved') THEN t.created + make_interval(mins => n % 50) END,
                CASE WHEN t.fate IN ('claimed', 'resolved') THEN t.created + make_interval(mins => n % 50) END,
                CASE t.fate WHEN 'resolved' THEN CAST(:sam AS uuid) WHEN 'withdrawn' THEN h.created_by END,
                CASE t.fate WHEN 'withdrawn' THEN t.created + interval '10 minutes'
                    WHEN 'resolved' THEN t.created + CASE n % 3 WHEN 2 THEN interval '2 hours'
                                                                ELSE interval '3 hours' END END,
                CASE t.fate WHEN 'resolved' THEN 'fixed' WHEN 'withdrawn' THEN 'withdrawn' END,
                CASE t.fate WHEN 'resolved' THEN 'done' WHEN 'withdrawn' THEN 'never mind' END,
                t.created, now()
            FROM session_handoffs h, generate_series(1, :n) AS n,
                LATERAL (SELECT now() - n * make_interval(secs => :every) AS created,
                    CASE WHEN n % 3 = 0 AND n <= :recent THEN 'open'
                         WHEN n % 3 = 0 THEN 'withdrawn'
                         WHEN n % 3 = 1 AND n <= :recent THEN 'claimed'
                         ELSE 'resolved' END AS fate) AS t
            WHERE h.id = CAST(:hid AS uuid)
            """
        ),
        {**params, "sam": session["sam"], "recent": RECENT},
    )
    await db.commit()


async def test_a_year_of_handoffs_is_read_through_the_account_index_for_a_week(
    api: Api, db: AsyncSession, engine: AsyncEngine
) -> None:
    session, handoff = await api.escalated("jane")
    await _a_year_of_handoffs(db, {**session, "sam": str(api["sam"].id)}, handoff)
    # What autovacuum does on a live database: fresh statistics, an up-to-date visibility map.
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE ai_sessions, session_handoffs"))

    now = datetime.now(UTC)
    week = Window(now - timedelta(days=7), now)
    for statement in (
        totals_statement(api["sam"].account_id, week),
        engineers_statement(api["sam"].account_id, week),
    ):
        plan = "\n".join(row[0] for row in await db.execute(Explain(statement)))
        assert "ix_handoffs_account_created" in plan, plan
        assert "Seq Scan on session_handoffs" not in plan, plan
    await db.rollback()

    # The figures over that data, by the generation's arithmetic: n = 1..383 are in the last
    # 7 days (383 x 1,576 s < 7 days < 384 x 1,576 s), plus the template escalation of today.
    body = await figures(api, "sam")
    in_week = range(1, 384)
    assert body["escalations"] == sum(1 for n in in_week if n % 10) + 1
    assert body["parked"] == sum(1 for n in in_week if n % 10 == 0)
    assert body["claimed"] == sum(1 for n in in_week if n % 3)
    assert body["resolved"] == sum(1 for n in in_week if n % 3 == 2)
    assert body["time_to_resolve_seconds"] == {"p50": 7200.0, "p90": 7200.0, "max": 7200.0}
    assert body["time_to_claim_seconds"]["max"] == 49 * 60
    assert body["ladder_steps"] == sum(n % 3 for n in in_week)
    year = await figures(api, "sam", period(now - timedelta(days=365), now + timedelta(minutes=1)))
    every_n = range(1, YEAR + 1)
    assert year["escalations"] == sum(1 for n in every_n if n % 10) + 1
    assert year["claimed"] == sum(1 for n in every_n if n % 3)
    assert year["resolved"] == sum(1 for n in every_n if fate(n) == "resolved")
    assert year["withdrawn"] == sum(1 for n in every_n if fate(n) == "withdrawn")
    assert year["unclaimed_now"] == sum(1 for n in every_n if fate(n) == "open" and n % 10) + 1
    assert year["time_to_resolve_seconds"]["max"] == 3 * 3600
