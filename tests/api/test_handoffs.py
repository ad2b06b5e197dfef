"""Park and escalate, handoff history, claim and release, the team queue."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import Notification, OutboxMessage, SessionHandoff
from tests.conftest import Api

HANDOFF_FIELDS = {
    "id", "session_id", "account_id", "intent", "engineer_notes", "priority", "target_user_id",
    "created_by", "created_at", "claimed_by", "claimed_at", "ai_assessment", "assessment_status",
}  # fmt: skip


def claim_path(session: dict[str, Any], handoff: dict[str, Any], action: str = "claim") -> str:
    return f"/api/v1/ai-sessions/{session['id']}/handoffs/{handoff['id']}/{action}"


async def test_escalate_returns_201_with_the_handoff_at_once(api: Api) -> None:
    session = await api.new_session("jane", psa_ticket_id="12345")
    response = await api.call(
        "jane",
        "POST",
        f"/api/v1/ai-sessions/{session['id']}/handoff",
        json={"intent": "escalate", "engineer_notes": "Rebuilt the profile", "priority": "high"},
    )
    assert response.status_code == 201
    handoff = response.json()
    assert set(handoff) >= HANDOFF_FIELDS
    assert handoff["intent"] == "escalate"
    assert handoff["priority"] == "high"
    assert handoff["engineer_notes"] == "Rebuilt the profile"
    assert handoff["created_by"] == str(api["jane"].id)
    assert handoff["account_id"] == str(api["jane"].account_id)
    assert handoff["claimed_by"] is None
    assert handoff["ai_assessment"] is None
    assert handoff["assessment_status"] == "pending"
    detail = (await api.call("jane", "GET", f"/api/v1/ai-sessions/{session['id']}")).json()
    assert detail["status"] == "escalated"


async def test_escalate_writes_notifications_for_every_senior_but_the_creator(
    api: Api, db: AsyncSession
) -> None:
    _, handoff = await api.escalated("jane")
    recipients = set(
        await db.scalars(select(Notification.recipient_id).where(Notification.handoff_id == handoff["id"]))
    )
    assert recipients == {api["sam"].id, api["ada"].id, api["olivia"].id}


async def test_escalate_to_a_target_notifies_only_the_target(api: Api, db: AsyncSession) -> None:
    _, handoff = await api.escalated("jane", target_user_id=str(api["ada"].id))
    assert handoff["target_user_id"] == str(api["ada"].id)
    recipients = list(
        await db.scalars(select(Notification.recipient_id).where(Notification.handoff_id == handoff["id"]))
    )
    assert recipients == [api["ada"].id]


async def test_escalate_records_follow_up_work_in_the_outbox(api: Api, db: AsyncSession) -> None:
    _, handoff = await api.escalated("jane", psa_ticket_id="4242")
    rows = (await db.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at))).all()
    topics = sorted(r.topic for r in rows)
    assert topics == ["enrich_escalation", "event", "post_to_chat", "push_to_psa", "send_escalation_emails"]
    assert all(r.account_id == api["jane"].account_id for r in rows)
    event = next(r for r in rows if r.topic == "event")
    assert event.payload["type"] == "handoff_created"
    assert event.payload["handoff_id"] == handoff["id"]
    assert event.payload["title"].startswith("Escalation from Jane · #4242: ")


async def test_escalation_without_ticket_pushes_nothing_to_the_psa(api: Api, db: AsyncSession) -> None:
    session = await api.new_session("jane")
    await api.hand_off(session["id"])
    topics = set(await db.scalars(select(OutboxMessage.topic)))
    assert "push_to_psa" not in topics


async def test_park_queues_without_notifications_or_assessment(api: Api, db: AsyncSession) -> None:
    session = await api.new_session("jane")
    handoff = await api.hand_off(session["id"], intent="park", priority="low")
    assert handoff["intent"] == "park"
    assert handoff["assessment_status"] == "not_requested"
    assert (await db.scalar(select(Notification.id))) is None
    assert set(await db.scalars(select(OutboxMessage.topic))) == {"event"}
    queue = (await api.call("sam", "GET", "/api/v1/ai-sessions/queue")).json()
    assert [q["id"] for q in queue] == [handoff["id"]]
    detail = (await api.call("jane", "GET", f"/api/v1/ai-sessions/{session['id']}")).json()
    assert detail["status"] == "parked"


async def test_second_open_handoff_on_a_session_gets_409(api: Api, db: AsyncSession) -> None:
    session, handoff = await api.escalated("jane")
    response = await api.call(
        "jane", "POST", f"/api/v1/ai-sessions/{session['id']}/handoff", json={"intent": "park"}
    )
    assert response.status_code == 409
    assert response.json()["handoff_id"] == handoff["id"]
    assert len((await db.scalars(select(SessionHandoff.id))).all()) == 1


async def test_concurrent_handoffs_of_one_session_create_exactly_one(api: Api, db: AsyncSession) -> None:
    session = await api.new_session("jane")
    path = f"/api/v1/ai-sessions/{session['id']}/handoff"
    responses = await asyncio.gather(
        *[api.call("jane", "POST", path, json={"intent": "escalate"}) for _ in range(10)]
    )
    assert sorted(r.status_code for r in responses) == [201] + [409] * 9
    assert len((await db.scalars(select(SessionHandoff.id))).all()) == 1


async def test_only_the_owner_may_hand_off_a_session(api: Api) -> None:
    session = await api.new_session("jane")
    response = await api.call(
        "sam", "POST", f"/api/v1/ai-sessions/{session['id']}/handoff", json={"intent": "park"}
    )
    assert response.status_code == 404
    # The same answer as for an id that does not exist: nothing tells Sam the session is there.
    assert response.json() == {"detail": "AI session not found"}


async def test_after_resolve_the_session_can_be_handed_off_again(api: Api) -> None:
    session, handoff = await api.escalated("jane")
    assert (await api.call("sam", "POST", claim_path(session, handoff))).status_code == 200
    resolved = await api.call(
        "sam", "POST", claim_path(session, handoff, "resolve"), json={"resolution": "x"}
    )
    assert resolved.status_code == 200, resolved.text
    again = await api.hand_off(session["id"], intent="escalate", priority="urgent")
    history = (await api.call("jane", "GET", f"/api/v1/ai-sessions/{session['id']}/handoffs")).json()
    assert [h["id"] for h in history] == [again["id"], handoff["id"]]
    assert [h["state"] for h in history] == ["open", "resolved"]


async def test_claim_sets_claimer_and_moves_the_session_to_them(api: Api) -> None:
    session, handoff = await api.escalated("jane")
    response = await api.call("sam", "POST", claim_path(session, handoff))
    assert response.status_code == 200
    claimed = response.json()
    assert claimed["claimed_by"] == str(api["sam"].id)
    assert claimed["claimed_at"] is not None
    detail = (await api.call("sam", "GET", f"/api/v1/ai-sessions/{session['id']}")).json()
    assert detail["status"] == "claimed"
    assert detail["assignee_id"] == str(api["sam"].id)


async def test_claiming_marks_the_claimers_bell_entry_read_and_no_one_elses(api: Api) -> None:
    session, handoff = await api.escalated("jane")

    async def entry(who: str) -> dict[str, Any]:
        notes = (await api.call(who, "GET", "/api/v1/notifications")).json()
        (note,) = [n for n in notes if n["handoff_id"] == handoff["id"]]
        return dict(note)

    assert (await entry("sam"))["read_at"] is None
    assert (await api.call("sam", "POST", claim_path(session, handoff))).status_code == 200
    assert (await entry("sam"))["read_at"] is not None
    assert (await entry("ada"))["read_at"] is None
    assert (await api.call("ada", "POST", claim_path(session, handoff))).status_code == 409
    assert (await entry("ada"))["read_at"] is None  # losing the race is not dealing with it


async def test_second_claim_gets_409_naming_the_winner(api: Api) -> None:
    session, handoff = await api.escalated("jane")
    assert (await api.call("sam", "POST", claim_path(session, handoff))).status_code == 200
    response = await api.call("ada", "POST", claim_path(session, handoff))
    assert response.status_code == 409
    body = response.json()
    assert body["claimed_by"] == {"id": str(api["sam"].id), "name": "Sam Senior"}
    assert body["detail"] == "Sam Senior already picked this up."
    assert body["claimed_at"]


async def test_claim_writes_a_claimed_event_to_the_outbox(api: Api, db: AsyncSession) -> None:
    session, handoff = await api.escalated("jane")
    await api.call("sam", "POST", claim_path(session, handoff))
    events = [
        r.payload for r in await db.scalars(select(OutboxMessage).where(OutboxMessage.topic == "event"))
    ]
    claimed = [e for e in events if e["type"] == "handoff_claimed"]
    assert len(claimed) == 1
    assert claimed[0]["claimed_by"] == {"id": str(api["sam"].id), "name": "Sam Senior"}


async def test_claim_of_a_handoff_under_another_session_id_answers_404(api: Api) -> None:
    session, handoff = await api.escalated("jane")
    other = await api.new_session("jane")
    response = await api.call("sam", "POST", claim_path(other, handoff))
    assert response.status_code == 404
    assert (await api.call("sam", "POST", claim_path(session, handoff))).status_code == 200


async def test_release_puts_the_handoff_back_in_the_queue(api: Api) -> None:
    session, handoff = await api.escalated("jane")
    await api.call("sam", "POST", claim_path(session, handoff))
    assert (await api.call("sam", "GET", "/api/v1/ai-sessions/queue")).json() == []
    response = await api.call("sam", "POST", claim_path(session, handoff, "release"))
    assert response.status_code == 200
    released = response.json()
    assert released["claimed_by"] is None
    assert released["claimed_at"] is None
    assert released["released_at"] is not None
    queue = (await api.call("ada", "GET", "/api/v1/ai-sessions/queue")).json()
    assert [q["id"] for q in queue] == [handoff["id"]]
    detail = (await api.call("jane", "GET", f"/api/v1/ai-sessions/{session['id']}")).json()
    assert detail["status"] == "escalated"
    assert detail["assignee_id"] is None
    assert (await api.call("ada", "POST", claim_path(session, handoff))).status_code == 200


async def test_releasing_an_unclaimed_handoff_gets_409(api: Api) -> None:
    session, handoff = await api.escalated("jane")
    response = await api.call("ada", "POST", claim_path(session, handoff, "release"))
    assert response.status_code == 409
    assert response.json()["detail"] == (
        "Only a claimed handoff can be put back in the queue. It is waiting in the queue."
    )
    assert response.json()["state"] == "open"


async def test_queue_is_most_urgent_then_oldest_first_with_context(api: Api) -> None:
    made: dict[str, str] = {}
    for name, priority in [("a", "normal"), ("b", "urgent"), ("c", "low"), ("d", "urgent"), ("e", "high")]:
        session = await api.new_session(
            "jane", title=name, problem_summary=f"problem {name}", psa_ticket_id=f"T-{name}"
        )
        made[name] = (await api.hand_off(session["id"], priority=priority))["id"]
    queue = (await api.call("sam", "GET", "/api/v1/ai-sessions/queue")).json()
    assert [q["id"] for q in queue] == [made["b"], made["d"], made["e"], made["a"], made["c"]]
    first = queue[0]
    assert first["problem_summary"] == "problem b"
    assert first["psa_ticket_id"] == "T-b"
    assert first["created_by"] == {"id": str(api["jane"].id), "name": "Jane Doe"}
    assert isinstance(first["waiting_seconds"], int)
    assert first["waiting_seconds"] >= 0


async def test_history_lists_a_sessions_handoffs_newest_first(api: Api) -> None:
    session = await api.new_session("jane")
    parked = await api.hand_off(session["id"], intent="park")
    await api.call("sam", "POST", claim_path(session, parked))
    await api.call("sam", "POST", claim_path(session, parked, "resolve"), json={"resolution": "done"})
    escalated = await api.hand_off(session["id"], intent="escalate")
    response = await api.call("ada", "GET", f"/api/v1/ai-sessions/{session['id']}/handoffs")
    assert response.status_code == 200
    assert [h["id"] for h in response.json()] == [escalated["id"], parked["id"]]


async def test_the_snapshot_keeps_the_transcript_as_it_was(api: Api, db: AsyncSession) -> None:
    session = await api.new_session("jane")
    path = f"/api/v1/ai-sessions/{session['id']}/messages"
    await api.call("jane", "POST", path, json={"role": "user", "content": "before"})
    handoff = await api.hand_off(session["id"])
    await api.call("jane", "POST", path, json={"role": "user", "content": "after"})
    row = await db.get(SessionHandoff, handoff["id"])
    assert row is not None
    assert [m["content"] for m in row.session_snapshot["messages"]] == ["before"]
