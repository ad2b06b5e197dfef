"""Role matrix: who may claim, release and see the queue (viewer < engineer < admin < owner)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import AISession, SessionHandoff
from tests.conftest import Api

API = "/api/v1"


def handoff_path(session: dict[str, Any], handoff: dict[str, Any], action: str) -> str:
    return f"{API}/ai-sessions/{session['id']}/handoffs/{handoff['id']}/{action}"


def assert_readable_403(response: Any) -> None:
    assert response.status_code == 403, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    # A sentence a person can act on, not a bare status phrase.
    assert len(detail.split()) >= 3, detail
    assert detail.strip().lower() not in {"forbidden", "permission denied"}


async def stored_handoff(db: AsyncSession, handoff_id: str) -> tuple[Any, ...]:
    row = (
        await db.execute(
            select(SessionHandoff.claimed_by, SessionHandoff.claimed_at, SessionHandoff.released_at).where(
                SessionHandoff.id == handoff_id
            )
        )
    ).one()
    await db.rollback()
    return tuple(row)


async def stored_session(db: AsyncSession, session_id: str) -> tuple[Any, ...]:
    row = (
        await db.execute(select(AISession.status, AISession.assignee_id).where(AISession.id == session_id))
    ).one()
    await db.rollback()
    return tuple(row)


# -- claim -------------------------------------------------------------------


@pytest.mark.parametrize("who", ["sam", "ada", "olivia"])
async def test_engineer_admin_and_owner_may_claim(api: Api, db: AsyncSession, who: str) -> None:
    session, handoff = await api.escalated("jane")

    response = await api.call(who, "POST", handoff_path(session, handoff, "claim"))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == handoff["id"]
    assert body["claimed_by"] == str(api[who].id)
    assert body["claimed_at"] is not None
    claimed_by, claimed_at, _ = await stored_handoff(db, handoff["id"])
    assert (str(claimed_by), claimed_at is not None) == (str(api[who].id), True)
    status, assignee = await stored_session(db, session["id"])
    assert (status, str(assignee)) == ("claimed", str(api[who].id))


async def test_viewer_claim_answers_403_and_claims_nothing(api: Api, db: AsyncSession) -> None:
    session, handoff = await api.escalated("jane")

    response = await api.call("victor", "POST", handoff_path(session, handoff, "claim"))

    assert_readable_403(response)
    assert await stored_handoff(db, handoff["id"]) == (None, None, None)
    assert await stored_session(db, session["id"]) == ("escalated", None)
    queue = (await api.call("sam", "GET", f"{API}/ai-sessions/queue")).json()
    assert [item["id"] for item in queue] == [handoff["id"]]
    # Still open: a senior's claim goes through afterwards.
    response = await api.call("sam", "POST", handoff_path(session, handoff, "claim"))
    assert response.status_code == 200, response.text


# -- release -----------------------------------------------------------------

# (creator, claimer, releaser, expected status)
RELEASES = [
    pytest.param("jane", "sam", "sam", 200, id="claimer-engineer-releases-own"),
    pytest.param("jane", "ada", "ada", 200, id="claimer-admin-releases-own"),
    pytest.param("jane", "sam", "ada", 200, id="admin-releases-engineers-claim"),
    pytest.param("jane", "sam", "olivia", 200, id="owner-releases-engineers-claim"),
    pytest.param("jane", "ada", "olivia", 200, id="owner-releases-admins-claim"),
    pytest.param("ada", "sam", "jane", 403, id="other-engineer-403"),
    pytest.param("jane", "sam", "jane", 403, id="escalating-engineer-403"),
    pytest.param("jane", "ada", "sam", 403, id="engineer-releases-admins-claim-403"),
    pytest.param("jane", "sam", "victor", 403, id="viewer-403"),
]


@pytest.mark.parametrize(("creator", "claimer", "releaser", "expected"), RELEASES)
async def test_release_is_for_the_claimer_or_an_admin(
    api: Api, db: AsyncSession, creator: str, claimer: str, releaser: str, expected: int
) -> None:
    session, handoff = await api.escalated(creator)
    response = await api.call(claimer, "POST", handoff_path(session, handoff, "claim"))
    assert response.status_code == 200, response.text
    claimed_at = response.json()["claimed_at"]

    response = await api.call(releaser, "POST", handoff_path(session, handoff, "release"))

    assert response.status_code == expected, response.text
    queue = (await api.call("olivia", "GET", f"{API}/ai-sessions/queue")).json()
    if expected == 200:
        body = response.json()
        assert body["id"] == handoff["id"]
        assert (body["claimed_by"], body["claimed_at"]) == (None, None)
        claimed_by, _, released_at = await stored_handoff(db, handoff["id"])
        assert (claimed_by, released_at is not None) == (None, True)
        assert await stored_session(db, session["id"]) == ("escalated", None)
        assert [item["id"] for item in queue] == [handoff["id"]]
    else:
        assert_readable_403(response)
        claimed_by, still_claimed_at, released_at = await stored_handoff(db, handoff["id"])
        assert (str(claimed_by), released_at) == (str(api[claimer].id), None)
        assert still_claimed_at is not None
        status, assignee = await stored_session(db, session["id"])
        assert (status, str(assignee)) == ("claimed", str(api[claimer].id))
        assert queue == []
        got = (await api.call(claimer, "GET", f"{API}/ai-sessions/{session['id']}/handoffs")).json()
        assert [(h["claimed_by"], h["claimed_at"]) for h in got] == [(str(api[claimer].id), claimed_at)]


# -- queue -------------------------------------------------------------------


@pytest.mark.parametrize("who", ["jane", "sam", "ada", "olivia"])
async def test_engineer_admin_and_owner_see_the_queue(api: Api, who: str) -> None:
    _, handoff = await api.escalated("jane" if who != "jane" else "sam")

    response = await api.call(who, "GET", f"{API}/ai-sessions/queue")

    assert response.status_code == 200, response.text
    assert [item["id"] for item in response.json()] == [handoff["id"]]


async def test_viewer_queue_answers_403(api: Api) -> None:
    await api.escalated("jane")

    response = await api.call("victor", "GET", f"{API}/ai-sessions/queue")

    assert_readable_403(response)
    assert "id" not in response.json()
    assert "Outlook" not in response.text
