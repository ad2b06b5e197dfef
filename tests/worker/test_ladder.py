"""The escalation ladder: the policy API, due times, each level once, claim cancels, release restarts.

The sweep is driven with an explicit ``now`` (deterministic, no sleeping), against real
PostgreSQL and Redis; a last test runs two real worker processes with second-scale delays.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.config import Settings
from handoffs.db.models import Notification, OutboxMessage, SessionHandoff
from handoffs.jobs.ladder import SWEPT_PREFIX, step_up_due
from tests.conftest import Api
from tests.support.polling import wait_for
from tests.support.replicas import log_dir
from tests.support.workers import fast_settings, job_context, start_worker_process

pytestmark = pytest.mark.usefixtures("clean_redis")
POLICY = "/api/v1/escalation-policy"
#: owners first, then everyone senior: with an escalation targeted at Sam, level 1 tells
#: Olivia, level 2 tells Ada (Sam was told at creation, Jane raised it).
LADDER = {"levels": [{"after_seconds": 60, "notify": "owners"}, {"after_seconds": 120, "notify": "seniors"}]}


async def set_policy(api: Api, body: dict[str, Any] = LADDER) -> None:
    response = await api.call("ada", "PUT", POLICY, json=body)
    assert response.status_code == 200, response.text


async def row(db: AsyncSession, handoff_id: str) -> SessionHandoff:
    db.expire_all()
    found = await db.scalar(select(SessionHandoff).where(SessionHandoff.id == handoff_id))
    assert found is not None
    db.expunge(found)  # keeps what was read through the rollback (no transaction held between reads)
    await db.rollback()
    return found


async def told(db: AsyncSession, handoff_id: str) -> list[tuple[str, str]]:
    """(recipient email, kind) of the bell entries about the handoff, in order."""
    from handoffs.db.models import User

    rows = await db.execute(
        select(User.email, Notification.kind)
        .join(User, User.id == Notification.recipient_id)
        .where(Notification.handoff_id == handoff_id)
        .order_by(Notification.created_at, User.email)
    )
    out = [(email, kind.value) for email, kind in rows.all()]
    await db.rollback()
    return out


# -- the policy API ------------------------------------------------------------------------------


async def test_the_default_policy_and_who_may_read_or_change_it(api: Api) -> None:
    default = (await api.call("jane", "GET", POLICY)).json()
    assert default == {
        "levels": [{"after_seconds": 600, "notify": "seniors"}, {"after_seconds": 1800, "notify": "admins"}],
        "is_default": True,
    }
    assert (await api.call("victor", "GET", POLICY)).status_code == 403
    refused = await api.call("sam", "PUT", POLICY, json=LADDER)
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Your role may not change the escalation policy."
    await set_policy(api)
    assert (await api.call("olivia", "GET", POLICY)).json() == {**LADDER, "is_default": False}
    # Another account keeps its own.
    assert (await api.call("gus", "GET", POLICY)).json()["is_default"] is True


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"levels": []}, "levels"),
        ({"levels": [{"after_seconds": 60 * (i + 1), "notify": "seniors"} for i in range(6)]}, "levels"),
        ({"levels": [{"after_seconds": 0, "notify": "seniors"}]}, "after_seconds"),
        ({"levels": [{"after_seconds": 60, "notify": "everyone"}]}, "notify"),
        ({"levels": [{"after_seconds": 600, "notify": "seniors"}, {"after_seconds": 600, "notify": "admins"}]},
         "must increase"),
        ({"levels": [{"after_seconds": 900, "notify": "seniors"}, {"after_seconds": 300, "notify": "admins"}]},
         "must increase"),
        ({"levels": [{"after_seconds": 60, "notify": "seniors", "extra": 1}]}, "extra"),
        ({"levels": [{"after_seconds": "soon", "notify": "seniors"}]}, "after_seconds"),
        ({}, "levels"),
    ],
)  # fmt: skip
async def test_a_bad_policy_is_a_clear_400_and_changes_nothing(
    api: Api, body: dict[str, Any], detail: str
) -> None:
    response = await api.call("ada", "PUT", POLICY, json=body)
    assert response.status_code == 400, response.text
    assert detail in response.json()["detail"]
    assert (await api.call("ada", "GET", POLICY)).json()["is_default"] is True


# -- due times ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("intent", "priority", "after"),
    [("escalate", "normal", 600), ("escalate", "high", 600), ("escalate", "urgent", 300),
     ("escalate", "low", None), ("park", "urgent", None)],
)  # fmt: skip
async def test_the_first_level_is_due_after_its_delay_halved_when_urgent_never_for_low_or_parked(
    api: Api, db: AsyncSession, intent: str, priority: str, after: int | None
) -> None:
    session = await api.new_session("jane")
    handoff = await api.hand_off(session["id"], intent=intent, priority=priority)
    found = await row(db, handoff["id"])
    if after is None:
        assert found.next_escalation_at is None
    else:
        assert found.next_escalation_at == found.created_at + timedelta(seconds=after)


async def test_a_policy_change_moves_the_waiting_escalations_due_times(api: Api, db: AsyncSession) -> None:
    _, normal = await api.escalated("jane")
    _, urgent = await api.escalated("jane", priority="urgent")
    await set_policy(api)
    for handoff, after in ((normal, 60), (urgent, 30)):
        found = await row(db, handoff["id"])
        assert found.next_escalation_at == found.created_at + timedelta(seconds=after)


# -- firing ---------------------------------------------------------------------------------------


async def test_each_level_fires_once_telling_only_who_was_not_told(
    api: Api, db: AsyncSession, settings: Settings, redis: Any
) -> None:
    await set_policy(api)
    _, handoff = await api.escalated("jane", target_user_id=str(api["sam"].id))
    created = (await row(db, handoff["id"])).created_at
    assert await told(db, handoff["id"]) == [("sam@acme.test", "escalation")]
    async with job_context(fast_settings(settings), redis) as jc:
        assert await step_up_due(jc, now=created + timedelta(seconds=59)) == 0
        assert await step_up_due(jc, now=created + timedelta(seconds=61)) == 1
        assert await step_up_due(jc, now=created + timedelta(seconds=62)) == 0  # once
        level1 = await row(db, handoff["id"])
        assert (level1.escalation_level, level1.next_escalation_at) == (1, created + timedelta(seconds=120))
        assert await step_up_due(jc, now=created + timedelta(seconds=121)) == 1
        assert await step_up_due(jc, now=created + timedelta(days=1)) == 0  # the ladder has no level 3
    assert await told(db, handoff["id"]) == [
        ("sam@acme.test", "escalation"), ("olivia@acme.test", "escalated"), ("ada@acme.test", "escalated"),
    ]  # fmt: skip
    final = await row(db, handoff["id"])
    assert (final.escalation_level, final.next_escalation_at, final.state) == (2, None, "open")

    shown = (await api.read("jane", {"id": handoff["session_id"]}, handoff)).json()
    assert shown["escalation_level"] == 2
    timeline = (await api.read("jane", {"id": handoff["session_id"]}, handoff, "timeline")).json()
    steps = [e["detail"] for e in timeline if e["kind"] == "escalated"]
    assert [(s["level"], s["notify"], s["notified"]) for s in steps] == [(1, "owners", 1), (2, "seniors", 1)]
    notes = (await api.call("olivia", "GET", "/api/v1/notifications")).json()
    (entry,) = [n for n in notes if n["handoff_id"] == handoff["id"]]
    assert entry["kind"] == "escalated"
    assert entry["title"].startswith("Unclaimed for 1 min · Escalation from Jane · #12345:")

    rows = (
        await db.scalars(
            select(OutboxMessage).where(OutboxMessage.payload["handoff_id"].astext == handoff["id"])
        )
    ).all()
    events = [r.payload for r in rows if r.topic == "event" and r.payload["type"] == "handoff_escalated"]
    assert [(e["level"], e["recipient_ids"]) for e in events] == [
        (1, [str(api["olivia"].id)]), (2, [str(api["ada"].id)]),
    ]  # fmt: skip
    chats = sorted((r.payload["level"], r.payload.get("notify")) for r in rows if r.topic == "post_to_chat")
    assert chats == [(0, None), (1, "owners"), (2, "seniors")]  # the escalation, then each level
    mails = [r.payload["recipient_ids"] for r in rows if r.topic == "send_escalation_emails"]
    assert mails == [[str(api["sam"].id)], [str(api["olivia"].id)], [str(api["ada"].id)]]
    await db.rollback()


async def test_concurrent_sweeps_fire_a_level_once(
    api: Api, db: AsyncSession, settings: Settings, redis: Any
) -> None:
    await set_policy(api)
    made = [await api.escalated("jane", target_user_id=str(api["sam"].id)) for _ in range(5)]
    later = (await row(db, made[-1][1]["id"])).created_at + timedelta(seconds=61)
    async with (
        job_context(fast_settings(settings), redis) as a,
        job_context(fast_settings(settings), redis) as b,
    ):
        fired = await asyncio.gather(*(jc_step(jc, later) for jc in (a, b, a, b)))
    assert sum(fired) == 5
    for _, handoff in made:
        assert (await row(db, handoff["id"])).escalation_level == 1
        assert [k for _, k in await told(db, handoff["id"])].count("escalated") == 1


async def jc_step(jc: Any, now: datetime) -> int:
    return await step_up_due(jc, now=now, limit=2)


async def test_a_claim_cancels_the_ladder_and_a_release_restarts_it_from_the_release(
    api: Api, db: AsyncSession, settings: Settings, redis: Any
) -> None:
    await set_policy(api)
    session, handoff = await api.escalated("jane", target_user_id=str(api["sam"].id))
    created = (await row(db, handoff["id"])).created_at
    assert (await api.act("sam", session, handoff, "claim")).status_code == 200
    assert (await row(db, handoff["id"])).next_escalation_at is None
    async with job_context(fast_settings(settings), redis) as jc:
        assert await step_up_due(jc, now=created + timedelta(hours=1)) == 0
        assert (await api.act("sam", session, handoff, "release")).status_code == 200
        released = await row(db, handoff["id"])
        assert released.released_at is not None
        assert released.next_escalation_at == released.released_at + timedelta(seconds=60)
        assert await step_up_due(jc, now=released.released_at + timedelta(seconds=59)) == 0
        assert await step_up_due(jc, now=released.released_at + timedelta(seconds=61)) == 1
    assert (await row(db, handoff["id"])).escalation_level == 1


async def test_nobody_is_told_twice_when_the_level_adds_no_one(
    api: Api, db: AsyncSession, settings: Settings, redis: Any
) -> None:
    """An untargeted escalation told every senior at once: the default level 1 fires, tells nobody."""
    _, handoff = await api.escalated("jane")
    before = await told(db, handoff["id"])
    created = (await row(db, handoff["id"])).created_at
    async with job_context(fast_settings(settings), redis) as jc:
        assert await step_up_due(jc, now=created + timedelta(seconds=601)) == 1
    assert await told(db, handoff["id"]) == before
    assert (await row(db, handoff["id"])).escalation_level == 1


# -- on the worker fleet ---------------------------------------------------------------------------


@pytest.mark.slow
async def test_two_worker_processes_fire_each_level_once_and_a_restarted_one_fires_the_next(
    api: Api, db: AsyncSession, settings: Settings, redis: Any
) -> None:
    await set_policy(
        api, {"levels": [{"after_seconds": 2, "notify": "owners"}, {"after_seconds": 8, "notify": "seniors"}]}
    )
    _, handoff = await api.escalated("jane", target_user_id=str(api["sam"].id))

    async def level(n: int) -> SessionHandoff | None:
        found = await row(db, handoff["id"])
        return found if found.escalation_level >= n else None

    workers = [start_worker_process(settings, str(log_dir() / f"ladder-{n}.log")) for n in "ab"]
    try:
        await wait_for(lambda: level(1), seconds=30)
    finally:
        for worker in workers:
            worker.kill()  # between the two levels, with no goodbye
            worker.wait(timeout=10)
    assert [k for _, k in await told(db, handoff["id"])] == ["escalation", "escalated"]
    restarted = start_worker_process(settings, str(log_dir() / "ladder-restarted.log"))
    try:
        await wait_for(lambda: level(2), seconds=30)
        fired_ms = int(datetime.now().timestamp() * 1000)
        # The restarted worker keeps sweeping (its trace in Redis moves on, two ticks past the
        # level) and finds nothing left to fire.
        await wait_for(lambda: _swept_after(redis, restarted.pid, fired_ms + 2000), seconds=30)
    finally:
        restarted.terminate()
        restarted.wait(timeout=15)
    assert [k for _, k in await told(db, handoff["id"])] == ["escalation", "escalated", "escalated"]
    assert (await row(db, handoff["id"])).escalation_level == 2


async def _swept_after(redis: Any, pid: int, since_ms: int) -> bool | None:
    """True once the worker process ``pid`` has swept after ``since_ms`` (its trace key)."""
    async for key in redis.scan_iter(match=f"{SWEPT_PREFIX}*:{pid}"):
        value = await redis.get(key)
        if value is not None and int(value) > since_ms:
            return True
    return None
