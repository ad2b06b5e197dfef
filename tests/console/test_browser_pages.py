"""The console's pages over plain HTTP (no browser): sign-in redirects, roles, tenancy, escaping, headers.

The in-process app serves them; a bearer token stands in for the session
cookie (the same JWT either way), so no cookie jar is shared between tests.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest

from tests.conftest import Api, settle


def page_data(body: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', body, re.S)
    assert match, "the page carries its data for console.js"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


@pytest.mark.parametrize(
    ("path", "next_"),
    [
        ("/", "/"),
        (
            "/sessions/0190aaaa-0000-7000-8000-000000000000?tab=1",
            "/sessions/0190aaaa-0000-7000-8000-000000000000%3Ftab%3D1",
        ),
        ("/parts/sidebar", "/parts/sidebar"),
    ],
)
async def test_pages_without_a_session_redirect_to_sign_in(api: Api, path: str, next_: str) -> None:
    response = await api.call(None, "GET", path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={next_}"


async def test_the_api_keeps_its_json_401(api: Api) -> None:
    response = await api.call(None, "GET", "/api/v1/me", follow_redirects=False)
    assert response.status_code == 401
    assert response.json()["detail"]


async def test_sign_in_page_and_assets_are_public(api: Api) -> None:
    page = await api.call(None, "GET", "/login?next=/sessions/x")
    assert page.status_code == 200
    assert 'id="login-form"' in page.text
    assert 'data-next="/sessions/x"' in page.text
    assert '<label for="email">Email</label>' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    for asset, kind in [("/static/js/console.js", "javascript"), ("/static/console.css", "text/css")]:
        response = await api.call(None, "GET", asset)
        assert response.status_code == 200, asset
        assert kind in response.headers["content-type"]


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "javascript:alert(1)", "/\\evil"]
)
async def test_sign_in_only_returns_to_this_site(api: Api, target: str) -> None:
    page = await api.call(None, "GET", "/login", params={"next": target})
    assert 'data-next="/"' in page.text


async def test_seniors_get_the_queue_with_its_items_and_a_stream_resume_point(api: Api) -> None:
    _, handoff = await api.escalated("jane", priority="urgent")
    await settle(api.client)  # the handoff_created event is published right after the commit
    response = await api.call("sam", "GET", "/")
    assert response.status_code == 200
    assert 'id="queue-card-template"' in response.text
    data = page_data(response.text)
    assert data["stream"] is True
    assert data["lastEventId"]  # the handoff_created event is in the history: resume from it
    assert [item["id"] for item in data["queue"]] == [handoff["id"]]
    assert data["queue"][0]["created_by"]["name"] == "Jane Doe"
    assert data["people"][str(api["jane"].id)] == "Jane Doe"


async def test_viewers_get_no_queue_no_stream_and_no_new_session(api: Api) -> None:
    await api.escalated("jane")
    response = await api.call("victor", "GET", "/")
    assert response.status_code == 200
    assert 'id="queue"' not in response.text
    assert "Pick up" not in response.text
    assert "New session" not in response.text
    data = page_data(response.text)
    assert data["stream"] is False
    assert "queue" not in data or data["queue"] == []


async def test_another_tenant_gets_a_404_page_for_every_acme_page(api: Api) -> None:
    session, handoff = await api.escalated("jane")
    base = f"/sessions/{session['id']}"
    for path in (
        base,
        f"{base}/handoffs/{handoff['id']}",
        f"{base}/handoffs/{handoff['id']}/parts/assessment",
    ):
        response = await api.call("gus", "GET", path)
        assert response.status_code == 404, path
        assert "text/html" in response.headers["content-type"]
        assert "Outlook" not in response.text
    own = await api.call("gus", "GET", "/")
    assert session["id"] not in own.text
    assert handoff["id"] not in own.text


async def test_unknown_part_is_a_400_page(api: Api) -> None:
    session, handoff = await api.escalated("jane")
    response = await api.call(
        "sam", "GET", f"/sessions/{session['id']}/handoffs/{handoff['id']}/parts/secrets"
    )
    assert response.status_code == 400
    assert "text/html" in response.headers["content-type"]


async def test_context_screen_and_its_live_parts(api: Api) -> None:
    session, handoff = await api.escalated("jane", engineer_notes="Tried safe mode", priority="high")
    path = f"/sessions/{session['id']}/handoffs/{handoff['id']}"
    page = await api.call("sam", "GET", path)
    assert page.status_code == 200
    text = page.text
    assert "Tried safe mode" in text
    assert '<span class="ticket" title="PSA ticket">#12345</span>' in text
    assert 'data-assessment-state="pending"' in text
    assert 'data-action="claim"' in text
    assert page_data(text)["handoff"] == {
        "id": handoff["id"],
        "sessionId": session["id"],
        "assessmentStatus": "pending",
        "claimedBy": None,
    }
    # Jane reads her own handoff, but does not pick it up herself.
    assert 'data-action="claim"' not in (await api.call("jane", "GET", path)).text

    claimed = await api.call(
        "ada", "POST", f"/api/v1/ai-sessions/{session['id']}/handoffs/{handoff['id']}/claim"
    )
    assert claimed.status_code == 200
    status = await api.call("sam", "GET", f"{path}/parts/status")
    assert status.status_code == 200
    assert "<strong>Ada Admin</strong> picked this up" in status.text
    assert 'data-action="claim"' not in status.text
    assert 'data-action="release"' not in status.text  # Sam is neither the claimer nor an admin
    mine = await api.call("ada", "GET", f"{path}/parts/status")
    assert "You picked this up" in mine.text
    assert 'data-action="release"' in mine.text


async def add_message(api: Api, session_id: str, role: str, content: str) -> None:
    response = await api.call(
        "jane", "POST", f"/api/v1/ai-sessions/{session_id}/messages", json={"role": role, "content": content}
    )
    assert response.status_code == 201, response.text


async def test_user_text_is_escaped_everywhere(api: Api) -> None:
    evil = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"
    session = await api.new_session("jane", title=evil, problem_summary=evil)
    for role in ("user", "assistant", "tool"):
        await add_message(api, session["id"], role, f"{evil} [x](javascript:alert(3))")
    handoff = await api.hand_off(session["id"], engineer_notes=evil)
    context = f"/sessions/{session['id']}/handoffs/{handoff['id']}"
    for who, path in [
        ("jane", "/"),
        ("jane", f"/sessions/{session['id']}"),
        ("sam", "/"),
        ("sam", context),
        ("sam", f"{context}/parts/documentation"),
    ]:
        body = (await api.call(who, "GET", path)).text
        assert "<script>alert(1)" not in body, path
        assert "<img src=x" not in body, path
        assert "javascript:" not in body.replace("[x](javascript:alert(3))", ""), path
    jane = (await api.call("jane", "GET", f"/sessions/{session['id']}")).text
    assert html.escape(evil, quote=False) in jane
    sam = (await api.call("sam", "GET", context)).text
    # Notes and messages go through the Markdown filter: the same text, escaped, inside its paragraph.
    assert f"<p>{html.escape(evil, quote=False)}</p>" in sam
    assert page_data((await api.call("sam", "GET", "/")).text)["queue"][0]["problem_summary"] == evil


async def test_messages_and_notes_render_markdown_and_tool_output_stays_verbatim(api: Api) -> None:
    session = await api.new_session("jane")
    await add_message(api, session["id"], "user", "Outlook says **Disconnected**\n- on every PC")
    await add_message(api, session["id"], "assistant", "Run `Get-Mailbox` then see https://example.com/kb")
    await add_message(api, session["id"], "tool", "**not bold** __init__.py")
    handoff = await api.hand_off(session["id"], engineer_notes="Rebuilt the profile: *still* failing")
    for path in (f"/sessions/{session['id']}", f"/sessions/{session['id']}/handoffs/{handoff['id']}"):
        body = (await api.call("sam", "GET", path)).text
        assert "<p>Outlook says <strong>Disconnected</strong></p>\n<ul>\n<li>on every PC</li>" in body, path
        assert "<code>Get-Mailbox</code>" in body, path
        assert '<a href="https://example.com/kb" target="_blank" rel="noopener noreferrer nofollow">' in body
        assert '<div class="message-body message-raw">**not bold** __init__.py</div>' in body, path
        # Clock times: UTC from the server, and it says so, until time.js rewrites them.
        assert re.search(r'<time datetime="[0-9T:.\-]+Z" data-clock>\d\d:\d\d UTC</time>', body), path
    context = (await api.call("sam", "GET", f"/sessions/{session['id']}/handoffs/{handoff['id']}")).text
    assert '<div class="notes md"><p>Rebuilt the profile: <em>still</em> failing</p></div>' in context
