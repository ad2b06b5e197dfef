"""The bell: escalation notifications, their title, reading them."""

from __future__ import annotations

import pytest

from handoffs.domain.notifications.titles import escalation_title, snippet
from tests.conftest import Api


def test_title_has_first_name_ticket_and_snippet() -> None:
    title = escalation_title("Jane", "12345", "Outlook is failing to sync email")
    assert title == "Escalation from Jane · #12345: Outlook is failing to sync email"


def test_title_leaves_out_the_ticket_part_without_a_ticket() -> None:
    assert escalation_title("Jane", None, "Printer offline") == "Escalation from Jane: Printer offline"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x" * 70, "x" * 70),
        ("x" * 71, "x" * 70 + "…"),
        ("word " * 20, ("word " * 14).rstrip() + "…"),
        ("line one\nline   two", "line one line two"),
    ],
)
def test_snippet_is_cut_to_70_characters_with_an_ellipsis(text: str, expected: str) -> None:
    assert snippet(text) == expected


async def test_seniors_get_a_notification_with_the_escalation_title(api: Api) -> None:
    long_summary = "Outlook is failing to sync email for the finance team after the Tuesday update rollout"
    session = await api.new_session("jane", problem_summary=long_summary, psa_ticket_id="12345")
    handoff = await api.hand_off(session["id"], engineer_notes="Cleared the OST cache")
    for who in ("sam", "ada", "olivia"):
        notes = (await api.call(who, "GET", "/api/v1/notifications")).json()
        assert len(notes) == 1
        note = notes[0]
        assert note["title"] == f"Escalation from Jane · #12345: {long_summary[:70].rstrip()}…"
        assert note["kind"] == "escalation"
        assert note["body"] == "Cleared the OST cache"
        assert note["handoff_id"] == handoff["id"]
        assert note["session_id"] == session["id"]
        assert note["read_at"] is None
    for who in ("jane", "victor", "gus"):
        assert (await api.call(who, "GET", "/api/v1/notifications")).json() == []


async def test_notifications_are_newest_first_and_can_be_marked_read(api: Api) -> None:
    first_session, _ = await api.escalated("jane")
    second_session, _ = await api.escalated("jane")
    notes = (await api.call("sam", "GET", "/api/v1/notifications")).json()
    assert [n["session_id"] for n in notes] == [second_session["id"], first_session["id"]]
    assert (await api.call("sam", "GET", "/api/v1/notifications/unread-count")).json() == {"unread": 2}

    response = await api.call("sam", "POST", f"/api/v1/notifications/{notes[0]['id']}/read")
    assert response.status_code == 200
    read_at = response.json()["read_at"]
    assert read_at is not None
    again = await api.call("sam", "POST", f"/api/v1/notifications/{notes[0]['id']}/read")
    assert again.json()["read_at"] == read_at
    assert (await api.call("sam", "GET", "/api/v1/notifications/unread-count")).json() == {"unread": 1}
    unread = (await api.call("sam", "GET", "/api/v1/notifications?unread=true")).json()
    assert [n["id"] for n in unread] == [notes[1]["id"]]


async def test_someone_elses_notification_answers_404(api: Api) -> None:
    await api.escalated("jane")
    note = (await api.call("sam", "GET", "/api/v1/notifications")).json()[0]
    response = await api.call("ada", "POST", f"/api/v1/notifications/{note['id']}/read")
    assert response.status_code == 404
    assert (await api.call("sam", "GET", "/api/v1/notifications")).json()[0]["read_at"] is None


async def test_read_all_clears_the_bell(api: Api) -> None:
    await api.escalated("jane")
    await api.escalated("jane")
    assert (await api.call("ada", "POST", "/api/v1/notifications/read-all")).status_code == 200
    assert (await api.call("ada", "GET", "/api/v1/notifications/unread-count")).json() == {"unread": 0}
    assert (await api.call("sam", "GET", "/api/v1/notifications/unread-count")).json() == {"unread": 2}
