"""Tenant isolation: another account's ids answer 404, its lists stay out of sight, nothing leaks or changes.

Acme data is built through the API; Globex users (gus, an engineer, and gina,
an owner) then call every endpoint that takes an id with Acme ids. The answer
is always 404 (never 403, never 409, never data), and the Acme rows are
exactly as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import (
    AISession,
    HandoffComment,
    Notification,
    OutboxMessage,
    SessionHandoff,
    SessionMessage,
    TimelineEntry,
)
from tests.conftest import Api

GLOBEX = ("gus", "gina")
API = "/api/v1"


@dataclass
class AcmeData:
    """Acme rows the foreign calls aim at."""

    fresh_session: str  # jane's, active, one message, never handed off
    escalated_session: str  # jane's, escalated, open (unclaimed) handoff
    open_handoff: str
    claimed_session: str  # jane's, escalated and claimed by sam
    claimed_handoff: str
    notification: str  # sam's bell entry for the open escalation

    def ids(self) -> set[str]:
        return {
            self.fresh_session,
            self.escalated_session,
            self.open_handoff,
            self.claimed_session,
            self.claimed_handoff,
            self.notification,
        }


@pytest.fixture
async def acme(api: Api) -> AcmeData:
    fresh = await api.new_session("jane", problem_summary="Acme printer offline on floor 3")
    response = await api.call(
        "jane",
        "POST",
        f"{API}/ai-sessions/{fresh['id']}/messages",
        json={"role": "user", "content": "The Acme printer shows error 0x42"},
    )
    assert response.status_code == 201, response.text

    escalated, open_handoff = await api.escalated("jane", engineer_notes="Acme secret notes")
    claimed, claimed_handoff = await api.escalated("jane", psa_ticket_id="777")
    response = await api.call(
        "sam", "POST", f"{API}/ai-sessions/{claimed['id']}/handoffs/{claimed_handoff['id']}/claim"
    )
    assert response.status_code == 200, response.text

    response = await api.call("sam", "GET", f"{API}/notifications")
    assert response.status_code == 200, response.text
    (notification,) = [n for n in response.json() if n["handoff_id"] == open_handoff["id"]]

    return AcmeData(
        fresh_session=fresh["id"],
        escalated_session=escalated["id"],
        open_handoff=open_handoff["id"],
        claimed_session=claimed["id"],
        claimed_handoff=claimed_handoff["id"],
        notification=notification["id"],
    )


async def acme_state(db: AsyncSession, api: Api) -> dict[str, Any]:
    """Everything about Acme's rows a foreign call could have changed, as plain values."""
    account_id = api["jane"].account_id
    state: dict[str, Any] = {}
    for model in (
        AISession, SessionMessage, SessionHandoff, Notification, OutboxMessage, TimelineEntry, HandoffComment,
    ):  # fmt: skip
        state[f"count:{model.__tablename__}"] = await db.scalar(
            select(func.count()).select_from(model).where(model.account_id == account_id)
        )
    state["sessions"] = (
        await db.execute(
            select(AISession.id, AISession.status, AISession.assignee_id, AISession.updated_at)
            .where(AISession.account_id == account_id)
            .order_by(AISession.id)
        )
    ).all()
    state["handoffs"] = (
        await db.execute(
            select(
                SessionHandoff.id,
                SessionHandoff.state,
                SessionHandoff.version,
                SessionHandoff.claimed_by,
                SessionHandoff.claimed_at,
                SessionHandoff.released_at,
                SessionHandoff.resolved_at,
                SessionHandoff.updated_at,
            )
            .where(SessionHandoff.account_id == account_id)
            .order_by(SessionHandoff.id)
        )
    ).all()
    state["notifications"] = (
        await db.execute(
            select(Notification.id, Notification.read_at)
            .where(Notification.account_id == account_id)
            .order_by(Notification.id)
        )
    ).all()
    await db.rollback()  # hold no transaction open between snapshots
    return state


# (case id, method, path template, JSON body). Templates name AcmeData fields.
FOREIGN_CALLS = [
    ("get-session", "GET", "/ai-sessions/{fresh_session}", None),
    ("get-handed-off-session", "GET", "/ai-sessions/{escalated_session}", None),
    ("get-claimed-session", "GET", "/ai-sessions/{claimed_session}", None),
    (
        "add-message",
        "POST",
        "/ai-sessions/{fresh_session}/messages",
        {"role": "user", "content": "hello from Globex"},
    ),
    (
        "add-message-to-claimed-session",
        "POST",
        "/ai-sessions/{claimed_session}/messages",
        {"role": "assistant", "content": "hello from Globex"},
    ),
    ("hand-off", "POST", "/ai-sessions/{fresh_session}/handoff", {"intent": "escalate"}),
    ("park", "POST", "/ai-sessions/{fresh_session}/handoff", {"intent": "park"}),
    # The session already has an open handoff: a 409 would confirm it exists.
    (
        "hand-off-with-open-handoff",
        "POST",
        "/ai-sessions/{escalated_session}/handoff",
        {"intent": "escalate"},
    ),
    ("list-handoffs", "GET", "/ai-sessions/{escalated_session}/handoffs", None),
    ("list-claimed-handoffs", "GET", "/ai-sessions/{claimed_session}/handoffs", None),
    ("get-handoff", "GET", "/ai-sessions/{escalated_session}/handoffs/{open_handoff}", None),
    ("get-claimed-handoff", "GET", "/ai-sessions/{claimed_session}/handoffs/{claimed_handoff}", None),
    ("claim-open-handoff", "POST", "/ai-sessions/{escalated_session}/handoffs/{open_handoff}/claim", None),
    # Already claimed: a 409 naming the claimer would leak Acme data.
    (
        "claim-claimed-handoff",
        "POST",
        "/ai-sessions/{claimed_session}/handoffs/{claimed_handoff}/claim",
        None,
    ),
    (
        "release-claimed-handoff",
        "POST",
        "/ai-sessions/{claimed_session}/handoffs/{claimed_handoff}/release",
        None,
    ),
    # Not claimed: a 409 "already in the queue" would confirm it exists.
    (
        "release-open-handoff",
        "POST",
        "/ai-sessions/{escalated_session}/handoffs/{open_handoff}/release",
        None,
    ),
    ("read-notification", "POST", "/notifications/{notification}/read", None),
    (
        "resolve-claimed-handoff",
        "POST",
        "/ai-sessions/{claimed_session}/handoffs/{claimed_handoff}/resolve",
        {"resolution": "Globex fixed it"},
    ),
    (
        "reassign-claimed-handoff",
        "POST",
        "/ai-sessions/{claimed_session}/handoffs/{claimed_handoff}/reassign",
        {"to_user_id": "00000000-0000-0000-0000-000000000000"},
    ),
    (
        "withdraw-open-handoff",
        "POST",
        "/ai-sessions/{escalated_session}/handoffs/{open_handoff}/withdraw",
        None,
    ),
    ("list-comments", "GET", "/ai-sessions/{claimed_session}/handoffs/{claimed_handoff}/comments", None),
    (
        "add-comment",
        "POST",
        "/ai-sessions/{claimed_session}/handoffs/{claimed_handoff}/comments",
        {"body": "hello from Globex"},
    ),
    ("timeline", "GET", "/ai-sessions/{claimed_session}/handoffs/{claimed_handoff}/timeline", None),
]


@pytest.mark.parametrize("who", GLOBEX)
@pytest.mark.parametrize(
    ("method", "template", "body"),
    [pytest.param(method, template, body, id=case) for case, method, template, body in FOREIGN_CALLS],
)
async def test_foreign_id_answers_404(
    api: Api,
    db: AsyncSession,
    acme: AcmeData,
    who: str,
    method: str,
    template: str,
    body: dict[str, Any] | None,
) -> None:
    before = await acme_state(db, api)
    path = API + template.format(**vars(acme))
    kwargs = {"json": body} if body is not None else {}

    response = await api.call(who, method, path, **kwargs)

    assert response.status_code == 404, response.text
    payload = response.json()
    assert isinstance(payload["detail"], str)
    assert payload["detail"].strip()
    assert set(payload) <= {"detail", "extra"}, payload  # no handoff, claimer or session in the body
    for acme_id in acme.ids():
        assert acme_id not in response.text
    assert "Jane" not in response.text
    assert "Sam" not in response.text
    assert await acme_state(db, api) == before


async def test_foreign_handoff_id_under_own_session_answers_404(
    api: Api, db: AsyncSession, acme: AcmeData
) -> None:
    """A Globex session id with an Acme handoff id: the handoff is still not theirs."""
    own, _ = await api.escalated("gus")
    before = await acme_state(db, api)
    for action in ("", "/claim", "/release"):
        method = "GET" if not action else "POST"
        path = f"{API}/ai-sessions/{own['id']}/handoffs/{acme.open_handoff}{action}"
        response = await api.call("gina", method, path)
        assert response.status_code == 404, (action, response.text)
        assert response.json()["detail"]
    assert await acme_state(db, api) == before


async def test_foreign_calls_leave_acme_unchanged(api: Api, acme: AcmeData) -> None:
    """Every foreign call in a row, then Acme users see exactly what they saw before."""
    for who in GLOBEX:
        for _, method, template, body in FOREIGN_CALLS:
            kwargs = {"json": body} if body is not None else {}
            await api.call(who, method, API + template.format(**vars(acme)), **kwargs)

    fresh = (await api.call("jane", "GET", f"{API}/ai-sessions/{acme.fresh_session}")).json()
    assert [m["content"] for m in fresh["messages"]] == ["The Acme printer shows error 0x42"]
    assert fresh["status"] == "active"
    response = await api.call("jane", "GET", f"{API}/ai-sessions/{acme.fresh_session}/handoffs")
    assert response.json() == []

    claimed_handoffs = (
        await api.call("jane", "GET", f"{API}/ai-sessions/{acme.claimed_session}/handoffs")
    ).json()
    assert [(h["id"], h["claimed_by"]) for h in claimed_handoffs] == [
        (acme.claimed_handoff, str(api["sam"].id))
    ]
    claimed = (await api.call("jane", "GET", f"{API}/ai-sessions/{acme.claimed_session}")).json()
    assert (claimed["status"], claimed["messages"]) == ("claimed", [])

    open_handoffs = (
        await api.call("jane", "GET", f"{API}/ai-sessions/{acme.escalated_session}/handoffs")
    ).json()
    assert [(h["id"], h["claimed_by"]) for h in open_handoffs] == [(acme.open_handoff, None)]
    escalated = (await api.call("jane", "GET", f"{API}/ai-sessions/{acme.escalated_session}")).json()
    assert escalated["status"] == "escalated"

    queue = (await api.call("sam", "GET", f"{API}/ai-sessions/queue")).json()
    assert [item["id"] for item in queue] == [acme.open_handoff]

    sam_notes = (await api.call("sam", "GET", f"{API}/notifications")).json()
    (note,) = [n for n in sam_notes if n["id"] == acme.notification]
    assert note["read_at"] is None


@dataclass
class GlobexData:
    sessions: dict[str, set[str]]  # who -> ids their session list must show
    queue: set[str]  # open handoff ids
    handoffs: set[str]
    session_ids: set[str]


@pytest.fixture
async def globex(api: Api) -> GlobexData:
    """Globex's own data, so its lists are not trivially empty."""
    g1, h1 = await api.escalated("gus", psa_ticket_id="G-1")  # notifies gina
    g2, h2 = await api.escalated("gus", psa_ticket_id="G-2")  # notifies gina, then gina claims it
    response = await api.call("gina", "POST", f"{API}/ai-sessions/{g2['id']}/handoffs/{h2['id']}/claim")
    assert response.status_code == 200, response.text
    g3, h3 = await api.escalated("gina", psa_ticket_id="G-3")  # notifies gus
    return GlobexData(
        sessions={"gus": {g1["id"], g2["id"]}, "gina": {g2["id"], g3["id"]}},
        queue={h1["id"], h3["id"]},
        handoffs={h1["id"], h2["id"], h3["id"]},
        session_ids={g1["id"], g2["id"], g3["id"]},
    )


@pytest.mark.parametrize("who", GLOBEX)
async def test_session_list_shows_no_other_account_data(
    api: Api, acme: AcmeData, globex: GlobexData, who: str
) -> None:
    response = await api.call(who, "GET", f"{API}/ai-sessions")
    assert response.status_code == 200, response.text
    assert {s["id"] for s in response.json()} == globex.sessions[who]
    assert not acme.ids() & {s["id"] for s in response.json()}
    assert "Acme" not in response.text


@pytest.mark.parametrize("who", GLOBEX)
async def test_queue_shows_no_other_account_data(
    api: Api, acme: AcmeData, globex: GlobexData, who: str
) -> None:
    response = await api.call(who, "GET", f"{API}/ai-sessions/queue")
    assert response.status_code == 200, response.text
    items = response.json()
    assert {item["id"] for item in items} == globex.queue
    assert {item["session_id"] for item in items} <= globex.session_ids
    assert "Acme" not in response.text
    assert "Jane" not in response.text


# Gina was notified of G-1 and G-2 and picked G-2 up, which marked that one read; Gus was
# notified of G-3 and heard back that Gina picked up his G-2.
@pytest.mark.parametrize(("who", "expected", "unread_expected"), [("gus", 2, 2), ("gina", 2, 1)])
async def test_notifications_show_no_other_account_data(
    api: Api, acme: AcmeData, globex: GlobexData, who: str, expected: int, unread_expected: int
) -> None:
    response = await api.call(who, "GET", f"{API}/notifications")
    assert response.status_code == 200, response.text
    notes = response.json()
    assert len(notes) == expected
    assert {n["handoff_id"] for n in notes} <= globex.handoffs
    assert {n["session_id"] for n in notes} <= globex.session_ids
    assert acme.notification not in {n["id"] for n in notes}
    assert "Jane" not in response.text

    unread = await api.call(who, "GET", f"{API}/notifications/unread-count")
    assert unread.status_code == 200, unread.text
    assert unread.json()["unread"] == unread_expected


async def test_acme_users_still_see_their_own_data(api: Api, acme: AcmeData, globex: GlobexData) -> None:
    """The other side of the matrix: the same lists do show the caller's account (no vacuous empties)."""
    queue = (await api.call("sam", "GET", f"{API}/ai-sessions/queue")).json()
    assert {item["id"] for item in queue} == {acme.open_handoff}
    sessions = (await api.call("jane", "GET", f"{API}/ai-sessions")).json()
    assert {s["id"] for s in sessions} == {acme.fresh_session, acme.escalated_session, acme.claimed_session}
    assert not globex.session_ids & {s["id"] for s in sessions}
    notes = (await api.call("sam", "GET", f"{API}/notifications")).json()
    assert acme.notification in {n["id"] for n in notes}
    assert not globex.handoffs & {n["handoff_id"] for n in notes}


@pytest.mark.parametrize("target", GLOBEX)
async def test_target_user_of_another_account_answers_400_and_writes_nothing(
    api: Api, db: AsyncSession, target: str
) -> None:
    session = await api.new_session("jane", psa_ticket_id="12345")
    counts_before = await _counts(db)

    response = await api.call(
        "jane",
        "POST",
        f"{API}/ai-sessions/{session['id']}/handoff",
        json={"intent": "escalate", "target_user_id": str(api[target].id)},
    )

    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert "target_user_id" in detail
    assert "Globex" not in response.text
    assert api[target].name not in response.text
    assert await _counts(db) == counts_before
    after = (await api.call("jane", "GET", f"{API}/ai-sessions/{session['id']}")).json()
    assert after["status"] == "active"
    gus_notes = (await api.call(target, "GET", f"{API}/notifications")).json()
    assert gus_notes == []


async def _counts(db: AsyncSession) -> dict[str, int]:
    counts = {}
    for model in (
        AISession, SessionMessage, SessionHandoff, Notification, OutboxMessage, TimelineEntry, HandoffComment,
    ):  # fmt: skip
        counts[model.__tablename__] = int(await db.scalar(select(func.count()).select_from(model)) or 0)
    await db.rollback()
    return counts


@pytest.mark.parametrize("who", GLOBEX)
async def test_the_handoff_search_never_crosses_accounts(api: Api, acme: AcmeData, who: str) -> None:
    """Full-text words that only Acme's handoffs hold find nothing from Globex; Acme finds them."""
    for query in ("", "?q=Acme+secret+notes", "?q=Outlook", "?state=claimed", "?claimed_by=me"):
        response = await api.call(who, "GET", f"{API}/handoffs{query}")
        assert response.status_code == 200, response.text
        found = {item["id"] for item in response.json()["items"]}
        assert not found & acme.ids(), query
        assert "Acme" not in response.text
        assert "Jane" not in response.text
    acme_found = (await api.call("victor", "GET", f"{API}/handoffs?q=Acme+secret+notes")).json()
    assert [item["id"] for item in acme_found["items"]] == [acme.open_handoff]
