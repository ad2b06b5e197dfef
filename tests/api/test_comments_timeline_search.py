"""Comments between the junior and the claimer, the timeline (audit trail) and finding handoffs."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.conftest import Api

API = "/api/v1"


async def bell_kinds(api: Api, who: str, handoff: dict[str, Any]) -> list[str]:
    notes = (await api.call(who, "GET", f"{API}/notifications")).json()
    return [n["kind"] for n in reversed(notes) if n["handoff_id"] == handoff["id"]]


# -- comments ------------------------------------------------------------------------------------


async def test_comments_go_to_the_other_side_and_list_oldest_first(api: Api) -> None:
    session, handoff = await api.claimed("sam")
    asked = await api.act("sam", session, handoff, "comments", {"body": "Which Outlook build?"})
    assert asked.status_code == 201, asked.text
    comment = asked.json()
    assert comment["author"] == {"id": str(api["sam"].id), "name": "Sam Senior"}
    assert comment["body"] == "Which Outlook build?"
    assert await bell_kinds(api, "jane", handoff) == ["claimed", "comment"]

    answered = await api.act("jane", session, handoff, "comments", {"body": "  16.0.17328  "})
    assert answered.status_code == 201
    assert answered.json()["body"] == "16.0.17328"
    assert "comment" in await bell_kinds(api, "sam", handoff)

    # A third colleague's comment goes to both sides, never to its author.
    await api.act("ada", session, handoff, "comments", {"body": "Seen this with the March update"})
    assert (await bell_kinds(api, "jane", handoff)).count("comment") == 2
    assert (await bell_kinds(api, "sam", handoff)).count("comment") == 2
    assert "comment" not in await bell_kinds(api, "ada", handoff)

    listed = (await api.read("victor", session, handoff, "comments")).json()  # viewers read
    assert [c["body"] for c in listed] == [
        "Which Outlook build?",
        "16.0.17328",
        "Seen this with the March update",
    ]
    assert [c["author"]["name"] for c in listed] == ["Sam Senior", "Jane Doe", "Ada Admin"]


async def test_a_comment_on_an_open_handoff_goes_to_nobody_but_is_kept(api: Api) -> None:
    session, handoff = await api.escalated("jane")
    response = await api.act("jane", session, handoff, "comments", {"body": "Also fails on webmail"})
    assert response.status_code == 201
    assert [c["body"] for c in (await api.read("sam", session, handoff, "comments")).json()] == [
        "Also fails on webmail"
    ]
    assert "comment" not in await bell_kinds(api, "sam", handoff)


@pytest.mark.parametrize(
    ("who", "body", "status"),
    [
        ("victor", {"body": "a viewer writes"}, 403),
        ("sam", {"body": ""}, 400),
        ("sam", {"body": " \n\t "}, 400),
        ("sam", {"body": "x" * 10_001}, 400),
        ("sam", {}, 400),
        ("sam", {"body": 5}, 400),
        ("sam", {"body": "x", "author": "someone"}, 400),
    ],
)
async def test_comment_refusals_write_nothing(api: Api, who: str, body: dict[str, Any], status: int) -> None:
    session, handoff = await api.claimed("sam")
    response = await api.act(who, session, handoff, "comments", body)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert (await api.read("sam", session, handoff, "comments")).json() == []
    assert "comment" not in await bell_kinds(api, "jane", handoff)


# -- timeline ------------------------------------------------------------------------------------


async def test_the_timeline_records_each_step_in_order_with_its_actor(api: Api) -> None:
    session, handoff = await api.escalated("jane", engineer_notes="Tried a new profile")
    await api.act("sam", session, handoff, "claim")
    await api.act("sam", session, handoff, "comments", {"body": "Which build?"})
    await api.act(
        "sam", session, handoff, "reassign", {"to_user_id": str(api["ada"].id), "note": "Ada knows"}
    )
    await api.act("ada", session, handoff, "release", {"reason": "Need a Windows box"})
    await api.act("olivia", session, handoff, "claim")
    await api.act(
        "olivia", session, handoff, "resolve", {"resolution": "New profile + cache", "outcome": "fixed"}
    )

    response = await api.read("victor", session, handoff, "timeline")
    assert response.status_code == 200, response.text
    entries = response.json()
    steps = [(e["kind"], e["actor"]["name"] if e["actor"] else None) for e in entries]
    assert steps == [
        ("created", "Jane Doe"),
        ("claimed", "Sam Senior"),
        ("commented", "Sam Senior"),
        ("reassigned", "Sam Senior"),
        ("released", "Ada Admin"),
        ("claimed", "Olivia Owner"),
        ("resolved", "Olivia Owner"),
    ]
    by_kind = {e["kind"]: e["detail"] for e in entries}
    assert by_kind["created"]["intent"] == "escalate"
    assert by_kind["reassigned"]["to_user"] == {"id": str(api["ada"].id), "name": "Ada Admin"}
    assert by_kind["reassigned"]["from_user"]["name"] == "Sam Senior"
    assert by_kind["reassigned"]["note"] == "Ada knows"
    assert by_kind["released"]["from_user"]["name"] == "Ada Admin"
    assert by_kind["resolved"] == {"outcome": "fixed", "resolution": "New profile + cache"}
    assert by_kind["commented"]["excerpt"] == "Which build?"
    ats = [e["at"] for e in entries]
    assert ats == sorted(ats)


async def test_a_refused_step_leaves_no_timeline_entry(api: Api) -> None:
    session, handoff = await api.claimed("sam")
    await api.act("jane", session, handoff, "resolve", {"resolution": "x"})  # 403
    await api.act("sam", session, handoff, "withdraw")  # 403
    kinds = [e["kind"] for e in (await api.read("sam", session, handoff, "timeline")).json()]
    assert kinds == ["created", "claimed"]


# -- finding handoffs ----------------------------------------------------------------------------


@pytest.fixture
async def handoffs(api: Api) -> dict[str, dict[str, Any]]:
    """Four Acme handoffs in known states, oldest first: open, claimed by sam, resolved, open+urgent."""
    made: dict[str, dict[str, Any]] = {}
    s, made["open"] = await api.escalated("jane", engineer_notes="Printer spooler keeps crashing")
    s, made["claimed"] = await api.claimed("sam", engineer_notes="Teams meetings drop audio")
    s, made["resolved"] = await api.claimed("ada", engineer_notes="Laptop will not join the domain")
    r = await api.act(
        "ada", s, made["resolved"], "resolve", {"resolution": "Reset the machine account trust"}
    )
    assert r.status_code == 200
    s, made["urgent"] = await api.escalated("jane", priority="urgent", engineer_notes="CEO mailbox full")
    return made


async def page(api: Api, who: str, query: str = "") -> dict[str, Any]:
    response = await api.call(who, "GET", f"{API}/handoffs{query}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_the_list_is_newest_first_with_people_and_states(api: Api, handoffs: dict[str, Any]) -> None:
    body = await page(api, "victor")  # viewers included
    assert [i["id"] for i in body["items"]] == [
        handoffs[k]["id"] for k in ("urgent", "resolved", "claimed", "open")
    ]
    assert body["next_cursor"] is None
    resolved = body["items"][1]
    assert resolved["state"] == "resolved"
    assert resolved["resolved_by"] == {"id": str(api["ada"].id), "name": "Ada Admin"}
    assert resolved["claimed_by"]["name"] == "Ada Admin"
    assert resolved["created_by"]["name"] == "Jane Doe"
    assert resolved["time_to_claim_seconds"] is not None
    assert resolved["problem_summary"] == "Outlook is failing to sync email"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?state=open", ["urgent", "open"]),
        ("?state=claimed", ["claimed"]),
        ("?state=resolved", ["resolved"]),
        ("?priority=urgent", ["urgent"]),
        ("?state=open&priority=normal", ["open"]),
        # Full-text: stemming ("crashes" finds "crashing"), notes and resolution are searched.
        ("?q=spooler+crashes", ["open"]),
        ("?q=machine+trust", ["resolved"]),
        ("?q=%22meetings+drop%22", ["claimed"]),
        ("?q=mailbox+-CEO", []),
        ("?q=zebra", []),
    ],
)
async def test_filters_and_full_text_search(
    api: Api, handoffs: dict[str, Any], query: str, expected: list[str]
) -> None:
    body = await page(api, "sam", query)
    assert [i["id"] for i in body["items"]] == [handoffs[k]["id"] for k in expected]


async def test_claimed_by_me_or_an_id(api: Api, handoffs: dict[str, Any]) -> None:
    mine = await page(api, "sam", "?claimed_by=me")
    assert [i["id"] for i in mine["items"]] == [handoffs["claimed"]["id"]]
    adas = await page(api, "sam", f"?claimed_by={api['ada'].id}")
    assert [i["id"] for i in adas["items"]] == [handoffs["resolved"]["id"]]


async def test_the_cursor_walks_every_handoff_once(api: Api, handoffs: dict[str, Any]) -> None:
    seen: list[str] = []
    cursor = ""
    for _ in range(10):
        body = await page(api, "sam", "?limit=1" + (f"&cursor={cursor}" if cursor else ""))
        seen += [i["id"] for i in body["items"]]
        if body["next_cursor"] is None:
            break
        cursor = body["next_cursor"]
    assert seen == [handoffs[k]["id"] for k in ("urgent", "resolved", "claimed", "open")]


@pytest.mark.parametrize(
    "query",
    ["?cursor=garbage", "?cursor=W10", "?claimed_by=sam", "?state=pending", "?priority=asap", "?limit=0",
     "?limit=101", "?limit=x", "?q=" + "x" * 201],
)  # fmt: skip
async def test_bad_search_parameters_are_a_clear_400(api: Api, query: str) -> None:
    response = await api.call("sam", "GET", f"{API}/handoffs{query}")
    assert response.status_code == 400, response.text
    assert response.json()["detail"]


async def test_the_queue_filters_by_priority_intent_text_and_mine(api: Api, handoffs: dict[str, Any]) -> None:
    s = await api.new_session("jane")
    targeted = await api.hand_off(s["id"], target_user_id=str(api["sam"].id), engineer_notes="Sam knows VPN")
    s = await api.new_session("jane")
    parked = await api.hand_off(s["id"], intent="park", engineer_notes="Parked VPN thing")

    async def queue(query: str, who: str = "sam") -> list[str]:
        response = await api.call(who, "GET", f"{API}/ai-sessions/queue{query}")
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()]

    assert await queue("?priority=urgent") == [handoffs["urgent"]["id"]]
    assert await queue("?intent=park") == [parked["id"]]
    assert await queue("?q=vpn") == [targeted["id"], parked["id"]]
    assert await queue("?mine=true") == [targeted["id"]]
    assert await queue("?mine=true", who="ada") == []
    items = (await api.call("sam", "GET", f"{API}/ai-sessions/queue")).json()
    assert {i["id"]: i["targeted_at_me"] for i in items}[targeted["id"]] is True
    bad = await api.call("sam", "GET", f"{API}/ai-sessions/queue?priority=asap")
    assert bad.status_code == 400


async def test_the_search_index_serves_full_text_queries(
    api: Api, db: AsyncSession, engine: AsyncEngine, handoffs: dict[str, Any]
) -> None:
    """With a few thousand handoffs in the account, a rare word is found through the GIN index,
    not by reading the account's handoffs one by one."""
    await db.execute(
        text(
            """
            INSERT INTO session_handoffs (id, account_id, session_id, intent, engineer_notes, priority,
                created_by, session_snapshot, assessment_status, psa_sync_status, state, version,
                escalation_level, created_at, updated_at)
            SELECT gen_random_uuid(), account_id, session_id, intent, 'filler note number ' || n, priority,
                created_by, session_snapshot, assessment_status, psa_sync_status, 'resolved', 1, 0,
                created_at - n * interval '1 minute', updated_at
            FROM session_handoffs, generate_series(1, 5000) AS n
            WHERE id = :id
            """
        ),
        {"id": handoffs["open"]["id"]},
    )
    await db.commit()
    # What autovacuum does on a live database: merge GIN's pending list, refresh the statistics.
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE session_handoffs"))
    plan = "\n".join(
        row[0]
        for row in await db.execute(
            text(
                "EXPLAIN SELECT id FROM session_handoffs WHERE account_id = :a "
                "AND search_vector @@ websearch_to_tsquery('english', 'printer spooler') "
                "ORDER BY created_at DESC, id DESC LIMIT 51"
            ),
            {"a": api["jane"].account_id},
        )
    )
    await db.rollback()
    assert "ix_handoffs_search" in plan, plan
    found = await page(api, "sam", "?q=printer+spooler")
    assert [i["id"] for i in found["items"]] == [handoffs["open"]["id"]]
