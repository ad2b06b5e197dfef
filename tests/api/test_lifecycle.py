"""After the pick-up: resolve, reassign, release with a reason, withdraw, the re-escalation guard.

Each refusal is checked to write nothing; each success to tell the people concerned
(bell entries of the contract's kinds), to move the session, and to queue its jobs.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import (
    AISession,
    Notification,
    OutboxMessage,
    SessionHandoff,
    TimelineEntry,
    User,
)
from handoffs.enums import JobTopic
from tests.conftest import Api


async def snapshot(db: AsyncSession, handoff_id: str) -> dict[str, Any]:
    """What a refused transition must leave exactly as it was."""
    row = await db.scalar(
        select(SessionHandoff)
        .where(SessionHandoff.id == handoff_id)
        .execution_options(populate_existing=True)
    )
    assert row is not None
    session = await db.get(AISession, row.session_id, populate_existing=True)
    assert session is not None
    counts = {
        model.__tablename__: await db.scalar(select(func.count()).select_from(model))
        for model in (SessionHandoff, Notification, OutboxMessage, TimelineEntry)
    }
    state = {
        "handoff": (row.state, row.version, row.claimed_by, row.resolved_by, row.resolution, row.updated_at),
        "session": (session.status, session.assignee_id, session.updated_at),
        **counts,
    }
    await db.rollback()
    return state


async def bell(api: Api, who: str, handoff: dict[str, Any]) -> list[dict[str, Any]]:
    """``who``'s notifications about ``handoff``, oldest first."""
    response = await api.call(who, "GET", "/api/v1/notifications")
    assert response.status_code == 200, response.text
    return [n for n in reversed(response.json()) if n["handoff_id"] == handoff["id"]]


async def jobs(db: AsyncSession, handoff: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = await db.execute(
        select(OutboxMessage.topic, OutboxMessage.payload)
        .where(OutboxMessage.payload["handoff_id"].astext == handoff["id"])
        .order_by(OutboxMessage.created_at, OutboxMessage.id)
    )
    out = [(topic, payload) for topic, payload in rows.all()]
    await db.rollback()
    return out


# -- states and the answer's new fields ----------------------------------------------------------


async def test_a_new_handoff_is_open_at_level_0_never_claimed(api: Api) -> None:
    _, handoff = await api.escalated("jane")
    assert handoff["state"] == "open"
    assert handoff["escalation_level"] == 0
    assert handoff["time_to_claim_seconds"] is None
    assert handoff["resolved_by"] is None
    assert handoff["resolution"] is None
    assert handoff["outcome"] is None


async def test_claim_moves_it_to_claimed_records_time_to_claim_and_tells_the_junior(api: Api) -> None:
    session, handoff = await api.claimed("sam")
    assert handoff["state"] == "claimed"
    assert handoff["time_to_claim_seconds"] is not None
    assert handoff["time_to_claim_seconds"] >= 0
    (note,) = await bell(api, "jane", handoff)
    assert note["kind"] == "claimed"
    assert note["title"] == "Sam Senior picked up your escalation: Outlook is failing to sync email"
    assert note["handoff_state"] == "claimed"
    # A second claim, after a release, keeps the first time to claim.
    first = handoff["time_to_claim_seconds"]
    assert (await api.act("sam", session, handoff, "release")).status_code == 200
    again = await api.act("ada", session, handoff, "claim")
    assert again.json()["time_to_claim_seconds"] == first


async def test_the_creator_cannot_claim_their_own_handoff_and_nothing_is_written(
    api: Api, db: AsyncSession
) -> None:
    session, handoff = await api.escalated("ada")  # an admin may claim, but not what they raised
    before = await snapshot(db, handoff["id"])
    response = await api.act("ada", session, handoff, "claim")
    assert response.status_code == 403
    assert "withdraw" in response.json()["detail"]
    assert await snapshot(db, handoff["id"]) == before


async def test_the_bell_entry_of_an_escalation_someone_took_reads_as_taken(api: Api) -> None:
    session, handoff = await api.escalated("jane")
    (waiting,) = await bell(api, "ada", handoff)
    assert (waiting["kind"], waiting["handoff_state"]) == ("escalation", "open")
    assert waiting["handoff_claimed_by"] is None
    await api.act("sam", session, handoff, "claim")
    (taken,) = await bell(api, "ada", handoff)
    assert taken["handoff_state"] == "claimed"
    assert taken["handoff_claimed_by"] == {"id": str(api["sam"].id), "name": "Sam Senior"}
    read = await api.call("ada", "POST", f"/api/v1/notifications/{taken['id']}/read")
    assert read.json()["handoff_state"] == "claimed"
    assert read.json()["handoff_claimed_by"]["name"] == "Sam Senior"


async def test_each_live_event_says_whose_bell_it_rang(api: Api, db: AsyncSession) -> None:
    session, handoff = await api.claimed("sam")
    await api.act("sam", session, handoff, "comments", {"body": "Which build?"})
    await api.act("sam", session, handoff, "reassign", {"to_user_id": str(api["ada"].id)})
    events = [p for topic, p in await jobs(db, handoff) if topic == "event"]
    told = {p["type"]: p["recipient_ids"] for p in events}
    jane, ada = str(api["jane"].id), str(api["ada"].id)
    assert told["handoff_claimed"] == [jane]
    assert told["handoff_commented"] == [jane]
    assert sorted(told["handoff_reassigned"]) == sorted([ada, jane])


# -- resolve -------------------------------------------------------------------------------------


async def test_resolve_closes_the_handoff_and_session_and_tells_the_junior_by_bell_and_email(
    api: Api, db: AsyncSession
) -> None:
    session, handoff = await api.claimed("sam", psa_ticket_id="4711")
    body = {"resolution": "Rebuilt the **OST** file; mail syncs again.", "outcome": "workaround"}
    response = await api.act("sam", session, handoff, "resolve", body)
    assert response.status_code == 200, response.text
    resolved = response.json()
    assert resolved["state"] == "resolved"
    assert resolved["resolved_by"] == str(api["sam"].id)
    assert resolved["resolved_at"] is not None
    assert resolved["resolution"] == body["resolution"]
    assert resolved["outcome"] == "workaround"
    detail = (await api.call("jane", "GET", f"/api/v1/ai-sessions/{session['id']}")).json()
    assert detail["status"] == "resolved"

    notes = await bell(api, "jane", handoff)
    assert [n["kind"] for n in notes] == ["claimed", "resolved"]
    assert notes[-1]["title"] == "Sam Senior resolved your escalation: Outlook is failing to sync email"
    assert "Rebuilt" in notes[-1]["body"]
    assert all(n["handoff_state"] == "resolved" for n in notes)

    queued = await jobs(db, handoff)
    assert (JobTopic.send_resolution_email, {
        "handoff_id": handoff["id"], "session_id": session["id"], "recipient_ids": [str(api["jane"].id)],
    }) in queued  # fmt: skip
    assert (JobTopic.push_to_psa, {"handoff_id": handoff["id"], "session_id": session["id"],
                                   "phase": "resolution"}) in queued  # fmt: skip


async def test_the_default_outcome_is_fixed_and_a_session_without_ticket_queues_no_psa_push(
    api: Api, db: AsyncSession
) -> None:
    session = await api.new_session("jane")
    handoff = await api.hand_off(session["id"])
    await api.act("sam", session, handoff, "claim")
    resolved = await api.act("sam", session, handoff, "resolve", {"resolution": "done"})
    assert resolved.json()["outcome"] == "fixed"
    assert [t for t, p in await jobs(db, handoff) if p.get("phase") == "resolution"] == []


async def test_an_admin_may_resolve_for_the_claimer_who_hears_of_it(api: Api) -> None:
    session, handoff = await api.claimed("sam")
    response = await api.act("olivia", session, handoff, "resolve", {"resolution": "Closed by the owner"})
    assert response.status_code == 200, response.text
    (note,) = [n for n in await bell(api, "sam", handoff) if n["kind"] == "resolved"]
    assert note["title"] == "Olivia Owner resolved a handoff you had: Outlook is failing to sync email"


@pytest.mark.parametrize(
    ("who", "state", "body", "status", "detail"),
    [
        # Jane, an engineer who raised it but does not have it.
        ("jane", "claimed", {"resolution": "x"}, 403, "Only Sam Senior, who has this handoff"),
        ("sam", "open", {"resolution": "x"}, 409, "Only a claimed handoff can be resolved. It is waiting"),
        (
            "sam",
            "resolved",
            {"resolution": "x"},
            409,
            "Only a claimed handoff can be resolved. It is resolved.",
        ),
        ("sam", "claimed", {"resolution": "   "}, 400, "resolution"),
        ("sam", "claimed", {"resolution": ""}, 400, "resolution"),
        ("sam", "claimed", {"resolution": "x" * 10_001}, 400, "resolution"),
        ("sam", "claimed", {}, 400, "resolution"),
        ("sam", "claimed", {"resolution": "x", "outcome": "withdrawn"}, 400, "outcome"),
        ("sam", "claimed", {"resolution": "x", "outcome": "solved"}, 400, "outcome"),
        ("sam", "claimed", {"resolution": "x", "extra": 1}, 400, "extra"),
        ("victor", "claimed", {"resolution": "x"}, 403, "Your role may not resolve handoffs."),
    ],
)
async def test_resolve_refusals_write_nothing(
    api: Api, db: AsyncSession, who: str, state: str, body: dict[str, Any], status: int, detail: str
) -> None:
    session, handoff = await api.escalated("jane")
    if state != "open":
        await api.act("sam", session, handoff, "claim")
    if state == "resolved":
        await api.act("sam", session, handoff, "resolve", {"resolution": "first"})
    before = await snapshot(db, handoff["id"])
    response = await api.act(who, session, handoff, "resolve", body)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]
    assert await snapshot(db, handoff["id"]) == before


# -- reassign ------------------------------------------------------------------------------------


async def test_reassign_hands_it_to_a_colleague_who_is_told_and_so_is_the_junior(api: Api) -> None:
    session, handoff = await api.claimed("sam")
    body = {"to_user_id": str(api["ada"].id), "note": "Ada knows Exchange hybrid"}
    response = await api.act("sam", session, handoff, "reassign", body)
    assert response.status_code == 200, response.text
    moved = response.json()
    assert (moved["state"], moved["claimed_by"]) == ("claimed", str(api["ada"].id))
    detail = (await api.call("ada", "GET", f"/api/v1/ai-sessions/{session['id']}")).json()
    assert detail["assignee_id"] == str(api["ada"].id)
    (to_ada,) = [n for n in await bell(api, "ada", handoff) if n["kind"] == "assigned"]
    assert to_ada["title"] == "Sam Senior handed you a handoff: Outlook is failing to sync email"
    assert to_ada["body"] == "Ada knows Exchange hybrid"
    assert [n["kind"] for n in await bell(api, "jane", handoff)] == ["claimed", "assigned"]
    # Ada now has it: she may resolve, Sam no longer may.
    refused = await api.act("sam", session, handoff, "resolve", {"resolution": "x"})
    assert refused.status_code == 403
    assert (await api.act("ada", session, handoff, "resolve", {"resolution": "x"})).status_code == 200


@pytest.mark.parametrize(
    ("to", "status", "detail"),
    [
        ("sam", 400, "already has this handoff"),
        ("jane", 400, "raised this handoff"),
        ("victor", 400, "not an active engineer, admin or owner of your account"),
        ("gus", 400, "not an active engineer, admin or owner of your account"),
        ("nobody", 400, "not an active engineer, admin or owner of your account"),
        ("not-a-uuid", 400, "to_user_id"),
    ],
)
async def test_reassign_to_someone_who_cannot_take_it_is_a_400_and_writes_nothing(
    api: Api, db: AsyncSession, to: str, status: int, detail: str
) -> None:
    session, handoff = await api.claimed("sam")
    target = {"nobody": "00000000-0000-0000-0000-000000000000", "not-a-uuid": "x"}.get(to)
    before = await snapshot(db, handoff["id"])
    body = {"to_user_id": target or str(api[to].id)}
    response = await api.act("sam", session, handoff, "reassign", body)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]
    assert await snapshot(db, handoff["id"]) == before


async def test_reassign_to_a_deactivated_colleague_is_a_400(api: Api, db: AsyncSession) -> None:
    session, handoff = await api.claimed("sam")
    olivia = await db.get(User, api["olivia"].id)
    assert olivia is not None
    olivia.is_active = False
    await db.commit()
    response = await api.act("sam", session, handoff, "reassign", {"to_user_id": str(api["olivia"].id)})
    assert response.status_code == 400


async def test_only_the_claimer_or_an_admin_reassigns_and_only_a_claimed_handoff(api: Api) -> None:
    session, handoff = await api.escalated("jane")
    to_ada = {"to_user_id": str(api["ada"].id)}
    assert (await api.act("sam", session, handoff, "reassign", to_ada)).status_code == 409
    await api.act("sam", session, handoff, "claim")
    refused = await api.act("jane", session, handoff, "reassign", to_ada)
    assert refused.status_code == 403
    assert (await api.act("olivia", session, handoff, "reassign", to_ada)).status_code == 200
    # Sam, whose handoff an owner moved, hears of it.
    assert "assigned" in [n["kind"] for n in await bell(api, "sam", handoff)]


# -- release -------------------------------------------------------------------------------------


async def test_release_with_a_reason_puts_it_back_tells_the_junior_and_keeps_the_reason(api: Api) -> None:
    session, handoff = await api.claimed("sam")
    response = await api.act("sam", session, handoff, "release", {"reason": "Out sick this afternoon"})
    assert response.status_code == 200, response.text
    assert (response.json()["state"], response.json()["claimed_by"]) == ("open", None)
    notes = await bell(api, "jane", handoff)
    assert notes[-1]["kind"] == "released"
    assert notes[-1]["body"] == "Out sick this afternoon"
    timeline = (await api.read("jane", session, handoff, "timeline")).json()
    assert timeline[-1]["kind"] == "released"
    assert timeline[-1]["detail"]["reason"] == "Out sick this afternoon"
    queue = (await api.call("ada", "GET", "/api/v1/ai-sessions/queue")).json()
    assert handoff["id"] in {item["id"] for item in queue}


async def test_release_without_a_body_still_works(api: Api) -> None:
    session, handoff = await api.claimed("sam")
    assert (await api.act("sam", session, handoff, "release")).status_code == 200


async def test_release_of_a_resolved_handoff_is_a_409(api: Api) -> None:
    session, handoff = await api.claimed("sam")
    await api.act("sam", session, handoff, "resolve", {"resolution": "done"})
    response = await api.act("sam", session, handoff, "release")
    assert response.status_code == 409
    assert response.json()["state"] == "resolved"


# -- withdraw ------------------------------------------------------------------------------------


async def test_the_creator_withdraws_an_open_handoff_and_it_leaves_the_queue(api: Api) -> None:
    session, handoff = await api.escalated("jane")
    response = await api.act("jane", session, handoff, "withdraw", {"reason": "A reboot fixed it"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["state"], body["outcome"], body["resolved_by"]) == (
        "resolved",
        "withdrawn",
        str(api["jane"].id),
    )
    queue = (await api.call("sam", "GET", "/api/v1/ai-sessions/queue")).json()
    assert handoff["id"] not in {item["id"] for item in queue}
    (entry,) = await bell(api, "sam", handoff)
    assert entry["handoff_state"] == "resolved"
    # Withdrawn, the session may be handed off again later.
    assert (await api.hand_off(session["id"]))["state"] == "open"


async def test_only_the_creator_withdraws_and_only_while_open(api: Api, db: AsyncSession) -> None:
    session, handoff = await api.escalated("jane")
    before = await snapshot(db, handoff["id"])
    refused = await api.act("ada", session, handoff, "withdraw")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Only Jane Doe, who raised this handoff, can withdraw it."
    assert await snapshot(db, handoff["id"]) == before
    await api.act("sam", session, handoff, "claim")
    taken = await api.act("jane", session, handoff, "withdraw")
    assert taken.status_code == 409
    assert taken.json()["claimed_by"]["name"] == "Sam Senior"
    assert "Sam Senior is working on it." in taken.json()["detail"]


# -- the re-escalation guard -----------------------------------------------------------------------


async def test_handing_off_a_claimed_session_is_a_409_naming_the_claimer_and_writes_nothing(
    api: Api, db: AsyncSession
) -> None:
    session, handoff = await api.claimed("sam")
    before = await snapshot(db, handoff["id"])
    for intent in ("escalate", "park"):
        response = await api.call(
            "jane", "POST", f"/api/v1/ai-sessions/{session['id']}/handoff", json={"intent": intent}
        )
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["detail"].startswith("Sam Senior is working on this;")
        assert body["claimed_by"] == {"id": str(api["sam"].id), "name": "Sam Senior"}
        assert body["handoff_id"] == handoff["id"]
    assert await snapshot(db, handoff["id"]) == before


async def test_parking_for_a_named_colleague_rings_their_bell_only(api: Api) -> None:
    session = await api.new_session("jane", problem_summary="VPN drops every hour")
    parked = await api.hand_off(session["id"], intent="park", target_user_id=str(api["ada"].id))
    (note,) = await bell(api, "ada", parked)
    assert note["kind"] == "parked"
    assert note["title"] == "Parked by Jane: VPN drops every hour"
    assert await bell(api, "sam", parked) == []
