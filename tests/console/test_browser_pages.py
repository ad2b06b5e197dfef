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
        "state": "open",
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
    actions = f"/api/v1/ai-sessions/{session['id']}/handoffs/{handoff['id']}"
    for who in ("jane", "sam"):
        response = await api.call(
            who, "POST", f"{actions}/comments", json={"body": f"{evil} [x](javascript:alert(3))"}
        )
        assert response.status_code == 201, response.text
    assert (await api.call("sam", "POST", f"{actions}/claim")).status_code == 200
    sam_resolves = await api.call(
        "sam", "POST", f"{actions}/resolve", json={"resolution": f"{evil} [x](javascript:alert(3))"}
    )
    assert sam_resolves.status_code == 200, sam_resolves.text
    for who, path in [
        ("jane", "/"),
        ("jane", f"/sessions/{session['id']}"),
        ("jane", f"/sessions/{session['id']}/parts/state"),
        ("sam", "/"),
        ("sam", context),
        ("sam", f"{context}/parts/documentation"),
        ("sam", f"{context}/parts/comments"),
        ("sam", f"{context}/parts/timeline"),
        ("sam", f"{context}/parts/status"),
        ("victor", "/handoffs"),
        ("victor", context),
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
    # Comments and the resolution are Markdown too: escaped, inside their paragraph.
    comments = (await api.call("sam", "GET", f"{context}/parts/comments")).text
    assert comments.count(f"<p>{html.escape(evil, quote=False)} [x](javascript:alert(3))</p>") == 2
    status = (await api.call("jane", "GET", f"{context}/parts/status")).text
    assert (
        f'<div class="resolution md"><p>{html.escape(evil, quote=False)} [x](javascript:alert(3))</p>'
        in status
    )
    # Plain text where a line is quoted: the timeline, the session's notice, the handoffs list.
    timeline = (await api.call("jane", "GET", f"{context}/parts/timeline")).text
    assert html.escape(evil) in timeline
    listing = (await api.call("victor", "GET", "/handoffs")).text
    assert html.escape(evil) in listing


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


def action_names(body: str) -> set[str]:
    """The actions a page offers: buttons and forms with ``data-action``, and a comment box."""
    found = set(re.findall(r'data-action="([a-z]+)"', body))
    if "data-comment-form" in body:
        found.add("comment")
    return found


async def test_each_role_is_offered_only_what_it_may_do_on_the_context_screen(api: Api) -> None:
    session, handoff = await api.escalated("jane")
    path = f"/sessions/{session['id']}/handoffs/{handoff['id']}"
    actions = f"/api/v1/ai-sessions/{session['id']}/handoffs/{handoff['id']}"
    offered = {
        who: action_names((await api.call(who, "GET", path)).text) for who in ("jane", "sam", "ada", "victor")
    }
    assert offered == {
        "jane": {"withdraw", "comment"},  # the creator withdraws; she does not pick up her own
        "sam": {"claim", "comment"},
        "ada": {"claim", "comment"},
        "victor": set(),  # read-only
    }

    assert (await api.call("sam", "POST", f"{actions}/claim")).status_code == 200
    offered = {
        who: action_names((await api.call(who, "GET", path)).text)
        for who in ("jane", "sam", "ada", "olivia", "victor")
    }
    assert offered == {
        "jane": {"comment"},  # claimed: too late to withdraw
        "sam": {"resolve", "reassign", "release", "comment"},  # the claimer
        "ada": {"resolve", "reassign", "release", "comment"},  # an admin
        "olivia": {"resolve", "reassign", "release", "comment"},  # the owner
        "victor": set(),
    }
    sam_page = (await api.call("sam", "GET", path)).text
    # The colleague picker: active engineers, admins and owners, not the claimer, not the creator.
    picker = re.search(r'<select id="reassign-to".*?</select>', sam_page, re.S)
    assert picker
    assert re.findall(r">([A-Z][a-z]+ [A-Z][a-z]+) \(", picker.group(0)) == ["Ada Admin", "Olivia Owner"]
    assert "<strong>Sam Senior</strong> picked this up" in (await api.call("jane", "GET", path)).text

    resolved = await api.call(
        "ada",
        "POST",
        f"{actions}/resolve",
        json={"resolution": "Cleared the **OST** cache", "outcome": "workaround"},
    )
    assert resolved.status_code == 200, resolved.text
    for who in ("jane", "sam", "ada"):
        body = (await api.call(who, "GET", path)).text
        assert action_names(body) == {"comment"}, who
        assert "<strong>Resolved by Ada Admin</strong> (workaround)" in body
        assert "<p>Cleared the <strong>OST</strong> cache</p>" in body
    timeline = (await api.call("victor", "GET", f"{path}/parts/timeline")).text
    texts = [" ".join(t.split()) for t in re.findall(r'<span class="tl-text">(.*?)</span>', timeline, re.S)]
    assert texts[:3] == [
        "Jane Doe escalated this",
        "Sam Senior picked this up",
        "Ada Admin resolved it (workaround): <q>Cleared the **OST** cache</q>",
    ]


async def test_the_juniors_session_page_tells_one_story_of_its_handoff(api: Api) -> None:
    session, handoff = await api.escalated("jane")
    page = f"/sessions/{session['id']}"
    actions = f"/api/v1/ai-sessions/{session['id']}/handoffs/{handoff['id']}"

    async def story() -> tuple[str, str]:
        body = (await api.call("jane", "GET", f"{page}/parts/state")).text
        notice = re.search(
            r'data-fill="session-notice">(.*?)</div>\s*<div data-fill="session-status"', body, re.S
        )
        history = re.search(r'data-fill="session-handoffs">(.*)', body, re.S)
        assert notice
        assert history
        flat = lambda text: " ".join(re.sub(r"<[^>]+>", " ", text).split())  # noqa: E731
        return flat(notice.group(1)), flat(history.group(1))

    notice, history = await story()
    assert "waiting for a senior" in notice
    assert "waiting for a senior" in history
    assert (await api.call("sam", "POST", f"{actions}/claim")).status_code == 200
    notice, history = await story()
    assert notice.startswith("Sam Senior is on it")
    assert "Sam Senior is on it" in history
    assert "waiting" not in notice + history
    reassigned = await api.call("sam", "POST", f"{actions}/reassign", json={"to_user_id": str(api["ada"].id)})
    assert reassigned.status_code == 200, reassigned.text
    notice, history = await story()
    assert notice.startswith("Ada Admin is on it")
    assert "Ada Admin is on it" in history
    await api.call(
        "ada", "POST", f"{actions}/resolve", json={"resolution": "Rebuilt the OST", "outcome": "fixed"}
    )
    notice, history = await story()
    assert notice.startswith("Resolved by Ada Admin (fixed): Rebuilt the OST")
    assert "resolved by Ada Admin (fixed)" in history

    body = (await api.call("jane", "GET", page)).text
    assert 'id="handoff-form"' in body  # resolved: she may hand it off again
    assert "data-comment-form" in body  # and still talk on the thread, from her page
    assert f'href="/sessions/{session["id"]}/handoffs/{handoff["id"]}#comments"' in body


async def test_the_creator_may_withdraw_while_it_waits(api: Api) -> None:
    session, handoff = await api.escalated("jane")
    page = f"/sessions/{session['id']}"
    withdrawn = await api.call(
        "jane", "POST", f"/api/v1/ai-sessions/{session['id']}/handoffs/{handoff['id']}/withdraw",
        json={"reason": "A reboot fixed it"},
    )  # fmt: skip
    assert withdrawn.status_code == 200, withdrawn.text
    body = (await api.call("jane", "GET", f"{page}/handoffs/{handoff['id']}")).text
    assert "<strong>Withdrawn by Jane Doe</strong>" in body
    assert "A reboot fixed it" in body
    assert action_names(body) == {"comment"}


async def test_viewers_read_the_handoffs_list_and_detail_without_actions(api: Api) -> None:
    session, handoff = await api.escalated("jane")
    other, resolved = await api.escalated("jane")
    actions = f"/api/v1/ai-sessions/{other['id']}/handoffs/{resolved['id']}"
    await api.call("sam", "POST", f"{actions}/claim")
    await api.call("sam", "POST", f"{actions}/resolve", json={"resolution": "Replaced the toner"})

    listing = await api.call("victor", "GET", "/handoffs")
    assert listing.status_code == 200
    rows = re.findall(r'<li class="handoff-row" data-id="([0-9a-f-]+)" data-state="(\w+)"', listing.text)
    assert rows == [(resolved["id"], "resolved"), (handoff["id"], "open")]  # newest first
    assert "resolved by Sam Senior (fixed)" in listing.text
    assert action_names(listing.text) == set()
    only = await api.call("victor", "GET", "/handoffs", params={"state": "resolved", "q": "toner"})
    assert re.findall(r'class="handoff-row" data-id="([0-9a-f-]+)"', only.text) == [resolved["id"]]
    assert (
        'data-id="' not in (await api.call("victor", "GET", "/handoffs", params={"q": "nothingmatches"})).text
    )
    # "Any state" sends state=; it is not an error.
    assert (await api.call("victor", "GET", "/handoffs", params={"state": ""})).status_code == 200

    for h, s in ((handoff, session), (resolved, other)):
        detail = await api.call("victor", "GET", f"/sessions/{s['id']}/handoffs/{h['id']}")
        assert detail.status_code == 200
        assert action_names(detail.text) == set()
        assert 'id="part-timeline"' in detail.text
        assert page_data(detail.text)["stream"] is False
    home = (await api.call("victor", "GET", "/")).text
    assert 'href="/handoffs"' in home
    assert (await api.call("gus", "GET", "/handoffs")).text.count('class="handoff-row"') == 0


# -- the ladder on the queue, the settings page, the team page ---------------------------------


async def test_the_console_carries_the_policy_and_each_escalations_place_on_the_ladder(api: Api) -> None:
    _, urgent = await api.escalated("jane", priority="urgent")
    _, low = await api.escalated("jane", priority="low")
    data = page_data((await api.call("sam", "GET", "/")).text)
    assert data["policy"]["levels"] == [
        {"after_seconds": 600, "notify": "seniors"},
        {"after_seconds": 1800, "notify": "admins"},
    ]
    assert data["policy"]["labels"]["admins"] == "admins and owners"
    assert data["policy"]["isDefault"] is True
    ladder = data["ladder"][urgent["id"]]
    assert (ladder["level"], ladder["next"], ladder["lastAt"]) == (0, 0, None)
    assert ladder["startedAt"]
    assert ladder["nextAt"]  # urgent: the first level due after 300 s
    assert low["id"] not in data["ladder"]  # low ones never step up
    part = await api.call("sam", "GET", "/parts/ladder")
    assert part.status_code == 200
    assert part.json()["ladder"][urgent["id"]] == ladder
    assert (await api.call("victor", "GET", "/parts/ladder")).status_code == 403
    assert "policy" not in page_data((await api.call("victor", "GET", "/")).text)


@pytest.mark.parametrize(("who", "status"), [("ada", 200), ("olivia", 200), ("sam", 403), ("victor", 403)])
async def test_only_admins_and_owners_open_the_settings_page(api: Api, who: str, status: int) -> None:
    response = await api.call(who, "GET", "/settings")
    assert response.status_code == status
    assert "text/html" in response.headers["content-type"]
    console = (await api.call(who, "GET", "/handoffs")).text
    if status == 200:
        assert 'id="policy-form"' in response.text
        assert 'id="chat-form"' in response.text
        levels = response.text.split('id="policy-levels"')[1].split("</ol>")[0]
        assert levels.count("data-level>") == 2  # the default ladder, two levels
        assert '<a href="/settings"' in console
    else:
        assert "Not for your role" in response.text
        assert 'id="policy-form"' not in response.text
        assert '<a href="/settings"' not in console


async def test_the_settings_page_shows_the_saved_ladder(api: Api) -> None:
    levels = [{"after_seconds": 90, "notify": "seniors"}, {"after_seconds": 3600, "notify": "owners"}]
    put = await api.call("ada", "PUT", "/api/v1/escalation-policy", json={"levels": levels})
    assert put.status_code == 200, put.text
    body = (await api.call("ada", "GET", "/settings")).text
    assert (
        'id="level-1-amount" name="amount" type="number" min="1" step="1" inputmode="numeric" required value="90"'
        in body
    )
    assert (
        'id="level-2-amount" name="amount" type="number" min="1" step="1" inputmode="numeric" required value="60"'
        in body
    )
    assert '<option value="seconds" selected>' in body
    assert '<option value="owners" selected>' in body
    assert 'id="policy-default" class="muted" hidden' in body


@pytest.mark.parametrize(("who", "status"), [("sam", 200), ("ada", 200), ("olivia", 200), ("victor", 403)])
async def test_engineers_and_up_open_the_team_page(api: Api, who: str, status: int) -> None:
    response = await api.call(who, "GET", "/team")
    assert response.status_code == status
    if status == 200:
        assert '<svg class="chart"' in response.text or "No data for this period yet." in response.text
        assert '<a href="/team" aria-current="page">Team</a>' in response.text
    else:
        assert "Not for your role" in response.text


async def test_the_team_page_numbers_are_the_apis_for_the_same_period(api: Api) -> None:
    session, handoff = await api.escalated("jane", priority="urgent")
    await api.escalated("jane", priority="high")
    await api.escalated("jane", priority="high")
    assert (await api.act("sam", session, handoff, "claim")).status_code == 200
    for days in (7, 30):
        body = (await api.call("sam", "GET", f"/team?days={days}")).text
        period = re.search(r'data-since="([^"]+)" data-until="([^"]+)"', body)
        assert period
        figures = (
            await api.call(
                "sam", "GET", "/api/v1/metrics/handoffs", params={"since": period[1], "until": period[2]}
            )
        ).json()
        for name in (
            "escalations",
            "parked",
            "claimed",
            "resolved",
            "withdrawn",
            "unclaimed_now",
            "ladder_steps",
        ):
            assert f'data-figure="{name}">{figures[name]}<' in body, name
        for priority in ("urgent", "high", "normal", "low"):
            count = figures["by_priority"][priority]["escalations"]
            assert re.search(
                rf'<tr data-priority="{priority}"><th scope="row">\w+</th><td>{count}</td>', body
            )
        assert body.count("<tr data-day=") == days
        # The SVG says what it is, and its bars are the table's numbers.
        assert 'role="img" aria-labelledby="priority-chart-title priority-chart-desc"' in body
        assert '<g class="chart-bar" data-name="High" data-value="2">' in body
        assert "Sam Senior" in body  # by engineer
