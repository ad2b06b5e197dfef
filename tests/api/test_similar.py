"""Similar past escalations: the account's resolved handoffs most like this one, how they were fixed,
and who fixed them (``GET .../similar`` and ``suggested_engineers`` on a handoff's answer)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from handoffs.domain.handoffs import similar as similar_module
from handoffs.domain.handoffs.schemas import SimilarHandoff
from handoffs.domain.handoffs.similar import (
    SIMILAR_RESOLVED,
    similar_resolved,
    statement_params,
    suggested_engineers,
)
from handoffs.domain.rows import Person
from handoffs.enums import Outcome
from tests.conftest import Api

API = "/api/v1"
OUTLOOK = "Outlook keeps failing to sync the shared mailbox"
OUTLOOK_FIX = "Cleared the stale OST file and re-added the shared mailbox in Outlook."

Pair = tuple[dict[str, Any], dict[str, Any]]


async def escalate(api: Api, problem: str, *, who: str = "jane", title: str = "", notes: str = "") -> Pair:
    """A fresh session of ``who`` about ``problem``, escalated: (session, handoff as answered)."""
    session = await api.new_session(who, title=title, problem_summary=problem)
    return session, await api.hand_off(session["id"], who, engineer_notes=notes)


async def resolve(
    api: Api, pair: Pair, resolution: str, *, by: str = "ada", outcome: str = "fixed"
) -> dict[str, Any]:
    session, handoff = pair
    claimed = await api.act(by, session, handoff, "claim")
    assert claimed.status_code == 200, claimed.text
    done = await api.act(by, session, handoff, "resolve", {"resolution": resolution, "outcome": outcome})
    assert done.status_code == 200, done.text
    return dict(done.json())


async def fixed(
    api: Api, problem: str, resolution: str, *, by: str = "ada", who: str = "jane", **kw: Any
) -> dict[str, Any]:
    """A handoff of ``who``'s about ``problem``, claimed and resolved by ``by`` with ``resolution``."""
    pair = await escalate(api, problem, who=who)
    return await resolve(api, pair, resolution, by=by, **kw)


async def similar(api: Api, who: str, pair: Pair) -> list[dict[str, Any]]:
    response = await api.read(who, *pair, "similar")
    assert response.status_code == 200, response.text
    return list(response.json())


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["handoff_id"] for item in items]


async def test_a_resolved_handoff_with_the_same_problem_ranks_first_with_its_resolution_and_resolver(
    api: Api,
) -> None:
    match = await fixed(api, "Outlook is failing to sync the shared mailbox", OUTLOOK_FIX, by="ada")
    loosely = await fixed(api, "Teams will not sync my calendar", "Signed out and in again", by="sam")
    unrelated = await fixed(api, "Printer on floor 3 jams", "Replaced the fuser", by="sam")
    pair = await escalate(api, OUTLOOK, notes="Rebuilt the Outlook profile, still failing")

    found = await similar(api, "sam", pair)
    assert ids(found) == [match["id"], loosely["id"]]  # the printer shares no word: absent
    best = found[0]
    assert best["session_id"] == match["session_id"]
    assert best["problem_summary"] == "Outlook is failing to sync the shared mailbox"
    assert best["resolution"] == OUTLOOK_FIX
    assert best["resolved_by"] == {"id": str(api["ada"].id), "name": "Ada Admin"}
    assert best["resolved_at"] == match["resolved_at"]
    assert best["outcome"] == "fixed"
    assert 0 < found[1]["score"] < best["score"] <= 1
    assert unrelated["id"] not in ids(found)


async def test_ties_go_to_the_newest_resolution_and_at_most_five_come_back(api: Api) -> None:
    made = [await fixed(api, "VPN drops every hour", f"Fix number {n}") for n in range(7)]
    pair = await escalate(api, "VPN drops every hour")
    found = await similar(api, "sam", pair)
    assert ids(found) == [h["id"] for h in reversed(made)][:5]
    assert len({item["score"] for item in found}) == 1


async def test_another_accounts_handoffs_never_appear_and_a_foreign_handoff_answers_404(api: Api) -> None:
    globex = await fixed(api, OUTLOOK, "Globex's own fix", who="gus", by="gina")
    acme = await fixed(api, OUTLOOK, OUTLOOK_FIX)
    pair = await escalate(api, OUTLOOK)
    assert ids(await similar(api, "sam", pair)) == [acme["id"]]
    globex_pair = await escalate(api, OUTLOOK, who="gus")
    assert ids(await similar(api, "gina", globex_pair)) == [globex["id"]]

    for who in ("gus", "gina"):  # Acme's ids, asked by Globex
        response = await api.read(who, *pair, "similar")
        assert response.status_code == 404, response.text
        assert response.json()["detail"] == "Handoff not found"
    assert (await api.read("sam", *globex_pair, "similar")).status_code == 404
    # A handoff id under another session of the same account is not there either.
    other_session = await api.new_session("jane")
    assert (await api.read("sam", other_session, pair[1], "similar")).status_code == 404


async def test_the_handoff_itself_and_every_handoff_of_its_session_are_left_out(api: Api) -> None:
    session, first = await escalate(api, OUTLOOK)
    await resolve(api, (session, first), OUTLOOK_FIX)
    elsewhere = await fixed(api, OUTLOOK, "Another session's fix")
    # The junior reopens the session: a new handoff with the same problem.
    again = await api.hand_off(session["id"], engineer_notes="It is back")
    assert ids(await similar(api, "sam", (session, again))) == [elsewhere["id"]]
    # Resolved in turn, it still does not find itself or its session's first handoff.
    await resolve(api, (session, again), "Same fix again")
    assert ids(await similar(api, "sam", (session, again))) == [elsewhere["id"]]


async def test_only_resolutions_that_fixed_something_are_returned(api: Api) -> None:
    await escalate(api, OUTLOOK)  # open
    claimed = await escalate(api, OUTLOOK)
    await api.act("sam", *claimed, "claim")
    withdrawn = await escalate(api, OUTLOOK)
    assert (await api.act("jane", *withdrawn, "withdraw", {"reason": "Fixed it myself"})).status_code == 200
    await fixed(api, OUTLOOK, "Same as the other ticket", outcome="duplicate")
    await fixed(api, OUTLOOK, "Could not make it fail", outcome="not_reproducible")
    workaround = await fixed(api, OUTLOOK, "Use webmail for now", outcome="workaround")
    other = await fixed(api, OUTLOOK, "Customer replaced the laptop", outcome="other")

    found = await similar(api, "sam", await escalate(api, OUTLOOK))
    assert sorted(ids(found)) == sorted([workaround["id"], other["id"]])
    assert {item["outcome"] for item in found} == {"workaround", "other"}


async def test_suggested_engineers_count_who_fixed_similar_ones_most_first(
    api: Api, db: AsyncSession
) -> None:
    await fixed(api, OUTLOOK, OUTLOOK_FIX, by="sam")
    await fixed(api, OUTLOOK, "Repaired the Office install", by="ada")
    await fixed(api, OUTLOOK + " again", "New profile", by="ada")
    await fixed(api, "Printer jams", "Replaced the fuser", by="olivia")  # not similar

    session, handoff = await escalate(api, OUTLOOK)
    suggested = [
        {"id": str(api["ada"].id), "name": "Ada Admin", "resolved_similar": 2},
        {"id": str(api["sam"].id), "name": "Sam Senior", "resolved_similar": 1},
    ]
    assert handoff["suggested_engineers"] == suggested  # the hand-off's answer
    read = await api.read("victor", session, handoff)
    assert read.status_code == 200
    assert read.json()["suggested_engineers"] == suggested  # the handoff as read, viewers included
    # Lists do not carry them.
    listed = (await api.call("jane", "GET", f"{API}/ai-sessions/{session['id']}/handoffs")).json()
    assert listed[0]["suggested_engineers"] == []

    # Never the handoff's creator: Sam raises one like those he fixed.
    _, sams = await escalate(api, OUTLOOK, who="sam")
    assert [e["name"] for e in sams["suggested_engineers"]] == ["Ada Admin"]

    # Only people one can still hand it to: a deactivated or demoted resolver is history only.
    await db.execute(text("UPDATE users SET is_active = false WHERE id = :id"), {"id": api["sam"].id})
    await db.execute(text("UPDATE users SET role = 'viewer' WHERE id = :id"), {"id": api["ada"].id})
    await db.commit()
    try:
        read = await api.read("jane", session, handoff)
        assert read.json()["suggested_engineers"] == []
        found = await similar(api, "jane", (session, handoff))
        assert {item["resolved_by"]["name"] for item in found} == {"Sam Senior", "Ada Admin"}
        assert {item["resolver_available"] for item in found} == {False}
    finally:
        await db.execute(text("UPDATE users SET role = 'admin' WHERE id = :id"), {"id": api["ada"].id})
        await db.commit()


async def test_a_failed_read_of_suggestions_never_fails_the_hand_off(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hand-off has committed when the suggestions are read: a database error there answers
    201 without them, and the escalation is there (not a 500 the junior would retry into a 409)."""
    await fixed(api, OUTLOOK, OUTLOOK_FIX)

    async def broken(conn: Any, **_: Any) -> list[SimilarHandoff]:
        await conn.execute(text("SELECT 1 / 0"))  # a real error: the transaction is aborted
        return []

    monkeypatch.setattr(similar_module, "similar_resolved", broken)
    session, handoff = await escalate(api, OUTLOOK)
    assert handoff["suggested_engineers"] == []
    monkeypatch.undo()
    read = await api.read("sam", session, handoff)
    assert read.status_code == 200
    assert [e["name"] for e in read.json()["suggested_engineers"]] == ["Ada Admin"]


def test_suggested_engineers_keep_the_better_match_first_among_equal_counts() -> None:
    ada, sam = Person(id=_uuid(1), name="Ada"), Person(id=_uuid(2), name="Sam")
    items = [_item(sam), _item(ada), _item(None), _item(ada, available=False), _item(sam, available=True)]
    assert [(e.name, e.resolved_similar) for e in suggested_engineers(items)] == [("Sam", 2), ("Ada", 1)]
    assert [e.name for e in suggested_engineers(items, exclude=sam.id)] == ["Ada"]
    assert suggested_engineers([]) == []


async def test_viewers_and_colleagues_read_similar_ones_exactly_as_they_read_the_handoff(api: Api) -> None:
    await fixed(api, OUTLOOK, OUTLOOK_FIX)
    pair = await escalate(api, OUTLOOK)
    expected = await similar(api, "jane", pair)
    assert len(expected) == 1
    for who in ("jane", "sam", "ada", "olivia", "victor", "gus", "gina"):
        handoff = await api.read(who, *pair)
        found = await api.read(who, *pair, "similar")
        assert found.status_code == handoff.status_code, who
        if found.status_code == 200:
            assert found.json() == expected, who
    # Viewers read; the endpoint writes nothing for anyone to refuse.
    assert (await api.read("victor", *pair, "similar")).status_code == 200


ODD_TEXTS = [
    "!!!",
    "'\"'\"",
    "' OR 1=1 --",
    "a & b | c ! (d) <-> e:* f:A",
    "&&& ||| ::: <<<>>> (((",
    "C:\\Users\\O'Brien\\AppData\\Local\\Microsoft\\Outlook\\ost's",
    "http://intranet/a?b=1&c='2'|d:3",
    "\\\\ \\' ''' \"\"\"",
    "the and of to is",  # stop words only: no lexemes
    "🙂 😡 — … «»",
    "",
]


@pytest.mark.parametrize("odd", ODD_TEXTS)
async def test_text_of_only_symbols_quotes_or_odd_punctuation_never_fails(api: Api, odd: str) -> None:
    await fixed(api, odd or "x", odd or "nothing")
    await fixed(api, OUTLOOK, OUTLOOK_FIX)
    session = await api.new_session("jane", title=odd[:200], problem_summary=odd)
    response = await api.call(
        "jane",
        "POST",
        f"{API}/ai-sessions/{session['id']}/handoff",
        json={"intent": "escalate", "engineer_notes": odd},
    )
    assert response.status_code == 201, response.text
    found = await similar(api, "sam", (session, response.json()))
    assert all(0 <= item["score"] <= 1 for item in found)
    page = await api.call("jane", "GET", f"/sessions/{session['id']}")
    assert page.status_code == 200


@pytest.mark.parametrize("odd", ["\x00", "Outlook\x00sync", "x" * 50_000 + " outlook"])
async def test_the_function_takes_any_text_nul_and_very_long_included(
    api: Api, engine: AsyncEngine, odd: str
) -> None:
    await fixed(api, OUTLOOK, OUTLOOK_FIX)
    async with engine.connect() as conn:
        found = await similar_resolved(
            conn, account_id=api["jane"].account_id, text=odd, exclude_session_id=None
        )
    assert all(isinstance(item, SimilarHandoff) for item in found)


async def test_the_worker_calls_it_with_plain_text_on_a_connection(api: Api, engine: AsyncEngine) -> None:
    """The worker has an engine, not a request's session: the same function, the same answer."""
    match = await fixed(api, OUTLOOK, OUTLOOK_FIX)
    pair = await escalate(api, OUTLOOK)
    async with engine.connect() as conn:
        found = await similar_resolved(
            conn,
            account_id=api["jane"].account_id,
            text="Outlook sync problem with a shared mailbox",
            exclude_session_id=None,
            limit=3,
        )
        assert [str(item.handoff_id) for item in found] == [match["id"]]
        assert found[0].resolution == OUTLOOK_FIX
        assert found[0].resolved_by == Person(id=api["ada"].id, name="Ada Admin")
        assert found[0].outcome == Outcome.fixed
        # Excluding a session leaves its handoffs out; another account sees nothing.
        without = await similar_resolved(
            conn,
            account_id=api["jane"].account_id,
            text=OUTLOOK,
            exclude_session_id=UUID(match["session_id"]),
        )
        assert without == []
        globex = await similar_resolved(
            conn, account_id=api["gus"].account_id, text=OUTLOOK, exclude_session_id=None
        )
        assert globex == []
    assert ids(await similar(api, "sam", pair)) == [match["id"]]


async def test_the_similarity_query_is_served_by_the_search_index(
    api: Api, db: AsyncSession, engine: AsyncEngine
) -> None:
    """With 5,000 resolved handoffs in the account, the OR of the text's words is looked up in the
    GIN index (a Bitmap Index Scan), not by ranking every resolved handoff of the account."""
    match = await fixed(api, OUTLOOK, OUTLOOK_FIX)
    filler = await fixed(api, "Printer jams", "Replaced the fuser")
    await db.execute(
        text(
            """
            INSERT INTO session_handoffs (id, account_id, session_id, intent, engineer_notes, priority,
                created_by, session_snapshot, assessment_status, psa_sync_status, state, version,
                escalation_level, resolved_by, resolved_at, resolution, outcome, created_at, updated_at)
            SELECT gen_random_uuid(), account_id, session_id, intent, 'filler note number ' || n, priority,
                created_by, jsonb_build_object('title', 'Ticket ' || n, 'problem_summary',
                    'Keyboard ' || md5(n::text) || ' sticks'),
                assessment_status, psa_sync_status, 'resolved', 2, 0, resolved_by,
                resolved_at - n * interval '1 minute', 'Cleaned keyboard ' || n, 'fixed',
                created_at - n * interval '1 minute', updated_at
            FROM session_handoffs, generate_series(1, 5000) AS n
            WHERE id = :id
            """
        ),
        {"id": filler["id"]},
    )
    await db.commit()
    async with engine.connect() as conn:  # what autovacuum does: merge GIN's pending list, statistics
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE session_handoffs"))
    params = statement_params(api["jane"].account_id, OUTLOOK + "\nRebuilt the profile", None)
    plan = "\n".join(row[0] for row in await db.execute(text("EXPLAIN " + SIMILAR_RESOLVED.text), params))
    await db.rollback()
    assert "Bitmap Index Scan on ix_handoffs_search" in plan, plan
    assert ids(await similar(api, "sam", await escalate(api, OUTLOOK))) == [match["id"]]


async def test_the_endpoint_and_the_suggestions_are_in_the_openapi_schema(api: Api) -> None:
    schema = (await api.call(None, "GET", "/schema/openapi.json")).json()
    operation = schema["paths"]["/api/v1/ai-sessions/{session_id}/handoffs/{handoff_id}/similar"]["get"]
    assert {"200", "404"} <= set(operation["responses"])
    assert "suggested_engineers" in schema["components"]["schemas"]["HandoffOut"]["properties"]


# -- helpers -------------------------------------------------------------------------------------


def _uuid(n: int) -> UUID:
    return UUID(int=n)


def _item(who: Person | None, *, available: bool = True) -> SimilarHandoff:
    return SimilarHandoff(
        handoff_id=_uuid(99),
        session_id=_uuid(98),
        problem_summary="p",
        resolution="r",
        resolved_by=who,
        resolved_at=datetime.now(UTC),
        score=0.5,
        outcome=Outcome.fixed,
        resolver_available=available,
    )
