"""The ladder in the console, in a real browser: cards coloured against the policy (and saying
so in words), stepping up live on ``handoff_escalated``; the settings page; the team page;
opt-in desktop notifications (a recording ``window.Notification``, injected before the page's
scripts run, which the CSP allows)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.config import Settings
from handoffs.db.models import SessionHandoff
from handoffs.jobs.ladder import step_up_due
from tests.conftest import Actor
from tests.console.test_browser_console import escalate_by_api, expect
from tests.support.browser import PHONE, Console, Open, artifact
from tests.support.polling import wait_for
from tests.support.workers import job_context

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean_redis")]

POLICY = "/api/v1/escalation-policy"


@pytest.fixture(autouse=True)
def _expect_timeout() -> None:
    from playwright.async_api import expect as playwright_expect

    playwright_expect.set_options(timeout=20_000)


async def set_policy(url: str, ada: Actor, levels: list[dict[str, Any]]) -> None:
    async with httpx.AsyncClient(base_url=url, headers=ada.headers) as http:
        response = await http.put(POLICY, json={"levels": levels})
        assert response.status_code == 200, response.text


async def escalate(url: str, jane: Actor, summary: str, **fields: Any) -> str:
    """An escalation (or a park) through the API; returns the handoff id."""
    if fields.get("intent") == "park" or fields.get("target_user_id"):
        async with httpx.AsyncClient(base_url=url, headers=jane.headers) as http:
            session = (
                await http.post("/api/v1/ai-sessions", json={"title": summary, "problem_summary": summary})
            ).json()
            body = {"intent": "escalate", "priority": "normal", **fields}
            response = await http.post(f"/api/v1/ai-sessions/{session['id']}/handoff", json=body)
            assert response.status_code == 201, response.text
            return str(response.json()["id"])
    _, handoff_id = await escalate_by_api(url, jane, summary=summary, title=summary, ticket=None, **fields)
    return handoff_id


async def move_ladder(db: AsyncSession, handoff_id: str, *, started_ago: float, due_in: float | None) -> None:
    """Put the handoff ``started_ago`` seconds into its wait, its next level due in ``due_in`` s."""
    now = datetime.now(UTC)
    started = now - timedelta(seconds=started_ago)
    await db.execute(
        update(SessionHandoff)
        .where(SessionHandoff.id == handoff_id)
        .values(
            created_at=started,
            ladder_started_at=started,
            next_escalation_at=None if due_in is None else now + timedelta(seconds=due_in),
        )
    )
    await db.commit()


def card(console: Console, handoff_id: str) -> Any:
    return console.page.locator(f'.card[data-id="{handoff_id}"]')


async def test_cards_are_coloured_against_the_policy_and_step_up_live(
    window: Open, replicas: list[str], settings: Settings, redis: Redis, db: AsyncSession,
    actors: dict[str, Actor],
) -> None:  # fmt: skip
    a, b = replicas
    await set_policy(
        a,
        actors["ada"],
        [{"after_seconds": 60, "notify": "seniors"}, {"after_seconds": 600, "notify": "admins"}],
    )
    calm = await escalate(a, actors["jane"], "Calm: VPN slow for one user")
    due = await escalate(a, actors["jane"], "Due: shared drive mapping fails")
    urgent = await escalate(a, actors["jane"], "Urgent: firewall drops all traffic", priority="urgent")
    low = await escalate(a, actors["jane"], "Low: new starter needs a mouse", priority="low")
    parked = await escalate(a, actors["jane"], "Parked: licence renewal", intent="park")
    # calm: 10 s of 60; due: 52 s of 60 (the last fifth); urgent: halved to 30 s and already past it.
    swept_at = datetime.now(UTC)  # the sweep below runs "now": only the urgent one is due then
    await move_ladder(db, calm, started_ago=10, due_in=50)
    await move_ladder(db, due, started_ago=52, due_in=8)
    await move_ladder(db, urgent, started_ago=40, due_in=-10)

    sam = await window(a, "sam@acme.test")
    ada = await window(b, "ada@acme.test", viewport=PHONE)
    for console in (sam, ada):
        await console.wait_live()
        await console.mark()
        await expect(card(console, calm)).to_have_attribute("data-ladder", "calm")
        await expect(card(console, calm)).to_have_class(re.compile(r"\bcard-ladder-calm\b"))
        await expect(card(console, calm).locator('[data-slot="ladder"]')).to_have_text(
            re.compile(r"^On time · steps up to the seniors in \d+ s$")
        )
        await expect(card(console, due)).to_have_attribute("data-ladder", "due")
        await expect(card(console, due).locator('[data-slot="ladder"]')).to_have_text(
            re.compile(r"^Due · (steps up to the seniors in \d s|stepping up to the seniors now)$")
        )
        await expect(card(console, due).locator('[data-slot="waiting"]')).to_have_class(
            re.compile(r"\bwaiting-due\b")
        )
        # Urgent: its (halved) time has come, and the sweep has not fired yet.
        await expect(card(console, urgent)).to_have_attribute("data-ladder", "due")
        await expect(card(console, urgent).locator('[data-slot="ladder"]')).to_have_text(
            "Due · stepping up to the seniors now"
        )
        for never in (low, parked):  # never step up: no colour, no words
            await expect(card(console, never)).not_to_have_attribute("data-ladder", re.compile(".*"))
            await expect(card(console, never).locator('[data-slot="ladder"]')).to_be_hidden()

    # The due one's time passes (time.js' clock, no reload): it reads "now".
    await expect(card(sam, due).locator('[data-slot="ladder"]')).to_have_text(
        "Due · stepping up to the seniors now", timeout=15_000
    )

    # The sweep fires the urgent one's first level: every queue turns it overdue, live.
    async with job_context(settings, redis) as jc:
        assert await step_up_due(jc, now=swept_at) == 1
        for console in (sam, ada):
            ladder = card(console, urgent).locator('[data-slot="ladder"]')
            await expect(card(console, urgent)).to_have_attribute("data-ladder", "overdue")
            await expect(card(console, urgent)).to_have_class(re.compile(r"\bcard-ladder-overdue\b"))
            await expect(ladder).to_have_text(
                re.compile(r"^Overdue · stepped up to the seniors \d+ s ago · admins and owners in \d+ min$")
            )
            await expect(card(console, urgent).locator('[data-slot="waiting"]')).to_have_class(
                re.compile(r"\bwaiting-overdue\b")
            )
            assert await console.same_document()
        assert await ada.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        await expect(card(sam, calm)).to_have_attribute("data-ladder", "calm")
    await sam.page.screenshot(path=artifact("ladder-queue.png"))
    await ada.page.screenshot(path=artifact("ladder-queue-phone.png"), full_page=True)

    # Rendered by the server after a reload, the step reads the same (from the timeline).
    await sam.page.reload()
    await expect(card(sam, urgent).locator('[data-slot="ladder"]')).to_have_text(
        re.compile(r"^Overdue · stepped up to the seniors \d+ s ago · admins and owners in \d+ min$")
    )
    assert sam.errors + ada.errors == []


async def test_the_settings_page_round_trip_and_who_may_open_it(
    window: Open, replicas: list[str], actors: dict[str, Actor]
) -> None:
    a, _ = replicas
    ada = await window(a, "ada@acme.test", path="/settings")
    page = ada.page
    await expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
    await expect(page.locator("#policy-default")).to_be_visible()
    await expect(page.locator("[data-level]")).to_have_count(2)
    await expect(page.get_by_label("After").first).to_have_value("10")

    # Client-side checks, the server's own words: not later than the level before.
    await page.locator("#level-2-amount").fill("5")
    await page.get_by_role("button", name="Save the ladder").click()
    await expect(page.locator("#policy-error")).to_have_text(
        "Level 2 must come after level 1 (300 s is not later than 600 s)."
    )
    # Anything the form leaves to the server shows the server's detail: more than 30 days.
    await page.locator("#level-2-amount").fill("50000")
    await page.get_by_role("button", name="Save the ladder").click()
    await expect(page.locator("#policy-error")).to_contain_text("after_seconds")
    await expect(page.locator("#policy-error")).to_contain_text("2592000")

    # Three levels: 90 seconds to the seniors, 20 minutes to admins, 1 hour to the owners.
    await page.locator("#level-1-amount").fill("90")
    await page.locator("#level-1-unit").select_option("seconds")
    await page.locator("#level-2-amount").fill("20")
    await page.get_by_role("button", name="Add a level").click()
    await expect(page.locator("[data-level]")).to_have_count(3)
    await expect(page.locator("#level-3-amount")).to_be_focused()
    await page.locator("#level-3-amount").fill("60")
    await page.locator("#level-3-notify").select_option("owners")
    for _ in range(2):
        await page.get_by_role("button", name="Add a level").click()
    await expect(page.get_by_role("button", name="Add a level")).to_be_disabled()
    await expect(page.locator("#policy-limit")).to_have_text("Five levels at most.")
    await page.get_by_role("button", name="Remove level 5").click()
    await page.get_by_role("button", name="Remove level 4").click()
    await expect(page.locator("[data-level]")).to_have_count(3)
    await page.get_by_role("button", name="Save the ladder").click()
    await expect(page.locator("#policy-saved")).to_have_text(
        "Saved. Escalations waiting now follow the new ladder."
    )
    await expect(page.locator("#policy-error")).to_be_hidden()
    await page.screenshot(path=artifact("settings.png"), full_page=True)

    async with httpx.AsyncClient(base_url=a, headers=actors["sam"].headers) as http:
        stored = (await http.get(POLICY)).json()
    assert stored == {
        "levels": [
            {"after_seconds": 90, "notify": "seniors"},
            {"after_seconds": 1200, "notify": "admins"},
            {"after_seconds": 3600, "notify": "owners"},
        ],
        "is_default": False,
    }
    await page.reload()
    await expect(page.locator("[data-level]")).to_have_count(3)
    await expect(page.locator("#level-1-amount")).to_have_value("90")
    await expect(page.locator("#level-1-unit")).to_have_value("seconds")
    await expect(page.locator("#level-2-amount")).to_have_value("20")
    await expect(page.locator("#level-3-notify")).to_have_value("owners")
    await expect(page.locator("#policy-default")).to_be_hidden()

    # The header links admins here; an engineer has no link and gets the 403 page.
    await expect(page.get_by_role("link", name="Settings")).to_have_attribute("aria-current", "page")
    sam = await window(a, "sam@acme.test")
    await expect(sam.page.get_by_role("link", name="Team")).to_be_visible()
    await expect(sam.page.get_by_role("link", name="Settings")).to_have_count(0)
    response = await sam.page.goto("/settings")
    assert response is not None
    assert response.status == 403
    await expect(sam.page.get_by_role("heading", name="Not for your role")).to_be_visible()
    assert ada.errors + sam.errors == []


async def test_the_chat_form_says_so_when_the_server_has_no_chat_integration(
    window: Open, replicas: list[str], actors: dict[str, Actor]
) -> None:
    """An older server (no /integrations/chat): the page says so and the rest of it works.
    The browser is made to see a 404 for that path; this server has the endpoint."""
    a, _ = replicas
    ada = await window(a, "ada@acme.test", path="/settings")
    await ada.page.route(
        "**/api/v1/integrations/chat*",
        lambda route: route.fulfill(
            status=404, content_type="application/json", body='{"detail": "Not Found"}'
        ),
    )
    await ada.page.reload()
    await expect(ada.page.locator("#chat-unavailable")).to_have_text(
        "Chat integration is not available on this server yet."
    )
    await expect(ada.page.locator("#chat-form")).to_be_hidden()
    await expect(ada.page.locator("#policy-form")).to_be_visible()  # the rest of the page works


async def test_the_chat_form_round_trip(window: Open, replicas: list[str], actors: dict[str, Actor]) -> None:
    a, _ = replicas
    ada = await window(a, "ada@acme.test", path="/settings")
    page = ada.page
    await expect(page.locator("#chat-form")).to_be_visible()
    await page.get_by_label("Send to").select_option("slack")
    await page.get_by_label("Webhook URL").fill("https://hooks.slack.com/services/T000/B000/T0K3N-xyz")
    await page.get_by_label("From priority").select_option("high")
    await page.get_by_role("button", name="Save chat settings").click()
    await expect(page.locator("#chat-saved")).to_have_text("Saved.")
    await expect(page.locator("#chat-url-set")).to_contain_text("set for hooks.slack.com")
    await page.reload()
    await expect(page.get_by_label("Send to")).to_have_value("slack")
    await expect(page.get_by_label("From priority")).to_have_value("high")
    await expect(page.get_by_label("Replace the webhook URL")).to_have_value("")  # write-only
    assert "T0K3N-xyz" not in await page.content()
    await page.get_by_role("button", name="Send a test message").click()
    # The hook is not reachable from the test machine: the answer is shown in words either way.
    await expect(page.locator("#chat-test-result")).to_have_text(
        re.compile(r"^The test message (was sent|did not go through)")
    )
    await page.screenshot(path=artifact("settings-chat.png"), full_page=True)


async def test_the_team_page_shows_the_apis_figures_with_charts(
    window: Open, replicas: list[str], db: AsyncSession, actors: dict[str, Actor]
) -> None:
    a, _ = replicas
    ids = [
        await escalate(a, actors["jane"], "Mail flow stopped", priority="urgent"),
        await escalate(a, actors["jane"], "Printer jam", priority="high"),
        await escalate(a, actors["jane"], "Printer toner", priority="high"),
        await escalate(a, actors["jane"], "Wallpaper", priority="low"),
    ]
    async with httpx.AsyncClient(base_url=a, headers=actors["sam"].headers) as http:
        queue = {item["id"]: item for item in (await http.get("/api/v1/ai-sessions/queue")).json()}
        for handoff_id in ids[:2]:
            claim = await http.post(
                f"/api/v1/ai-sessions/{queue[handoff_id]['session_id']}/handoffs/{handoff_id}/claim"
            )
            assert claim.status_code == 200, claim.text
    # One of them was raised three days ago and picked up 4 minutes later: a bar on another day.
    raised = datetime.now(UTC) - timedelta(days=3)
    await db.execute(
        update(SessionHandoff).where(SessionHandoff.id == ids[0])
        .values(created_at=raised, first_claimed_at=raised + timedelta(minutes=4))
    )  # fmt: skip
    await db.commit()

    sam = await window(a, "sam@acme.test", path="/team")
    page = sam.page
    for days in (7, 30):
        if days == 30:
            await page.get_by_role("link", name="Last 30 days").click()
            await page.wait_for_url(re.compile(r"/team\?days=30$"))
        await expect(page.get_by_role("link", name=f"Last {days} days")).to_have_attribute(
            "aria-current", "true"
        )
        since = await page.locator("#period").get_attribute("data-since")
        until = await page.locator("#period").get_attribute("data-until")
        async with httpx.AsyncClient(base_url=a, headers=actors["sam"].headers) as http:
            figures = (
                await http.get("/api/v1/metrics/handoffs", params={"since": since, "until": until})
            ).json()
        for name in ("escalations", "claimed", "resolved", "unclaimed_now", "ladder_steps"):
            await expect(page.locator(f'[data-figure="{name}"]')).to_have_text(str(figures[name]))
        for priority, text in (("urgent", "1"), ("high", "2"), ("normal", "0"), ("low", "1")):
            assert figures["by_priority"][priority]["escalations"] == int(text)
            await expect(
                page.locator(f'#priority-table tr[data-priority="{priority}"] td').first
            ).to_have_text(text)
            bar = page.locator(f'#priority-chart .chart-bar[data-name="{priority.capitalize()}"]')
            await expect(bar).to_have_attribute("data-value", text)
        await expect(page.locator("#claim-table tbody tr")).to_have_count(days)
        day = raised.strftime("%Y-%m-%d")
        await expect(page.locator(f'#claim-table tr[data-day="{day}"] td').first).to_have_text("4 min")
        await expect(page.locator("#claim-chart title").first).to_have_text(
            f"Median time to a first pick-up per day, last {days} days"
        )
        await expect(page.locator("#claim-chart rect")).to_have_count(2)  # two days had pick-ups
        await expect(page.locator("#engineers")).to_contain_text("Sam Senior")
        await page.screenshot(path=artifact(f"team-{days}.png"), full_page=True)
    assert not sam.errors, sam.errors


#: Records what the page asks of the Notification API (the real one answers permission, which
#: the test grants) and of the Web Audio API (the beep), before the page's own scripts run.
RECORDER = """
(() => {
  const Real = window.Notification;
  window.__notes = [];
  window.__beeps = 0;
  class Recorder {
    static get permission() { return Real ? Real.permission : "granted"; }
    static requestPermission() {
      window.__asked = (window.__asked || 0) + 1;
      return Real ? Real.requestPermission() : Promise.resolve("granted");
    }
    constructor(title, options) { window.__notes.push({ title, body: options.body, tag: options.tag }); }
    close() {}
  }
  window.Notification = Recorder;
  window.AudioContext = class {
    constructor() { this.state = "running"; this.currentTime = 0; this.destination = {}; }
    resume() { return Promise.resolve(); }
    createOscillator() {
      window.__beeps += 1;
      return { type: "", frequency: { setValueAtTime() {} }, connect() {}, start() {}, stop() {} };
    }
    createGain() {
      return { gain: { setValueAtTime() {}, exponentialRampToValueAtTime() {} }, connect() {} };
    }
  };
})();
"""


async def notes(console: Console) -> list[dict[str, Any]]:
    return list(await console.page.evaluate("window.__notes"))


async def notified(console: Console, count: int) -> list[dict[str, Any]]:
    async def enough() -> list[dict[str, Any]] | None:
        seen = await notes(console)
        return seen if len(seen) >= count else None

    seen: list[dict[str, Any]] = await wait_for(enough)
    return seen


async def notifying_window(window: Open, url: str, email: str) -> Console:
    console = await window(url, email)
    await console.context.grant_permissions(["notifications"], origin=url)
    await console.context.add_init_script(script=RECORDER)
    await console.page.reload()
    await console.wait_live()
    return console


async def test_desktop_notifications_are_opt_in_and_only_for_urgent_or_mine(
    window: Open, replicas: list[str], settings: Settings, redis: Redis, db: AsyncSession,
    actors: dict[str, Actor],
) -> None:  # fmt: skip
    a, b = replicas
    # Level 1 tells the owners, who were not told of an escalation raised for Sam. Long delays:
    # only the one the test moves steps up, however slow the machine.
    await set_policy(
        a,
        actors["ada"],
        [{"after_seconds": 600, "notify": "owners"}, {"after_seconds": 1200, "notify": "seniors"}],
    )
    sam = await notifying_window(window, a, "sam@acme.test")
    olivia = await notifying_window(window, b, "olivia@acme.test")
    ada = await notifying_window(window, b, "ada@acme.test")  # never opts in
    for console in (sam, olivia):
        button = console.page.get_by_role("button", name="Notify me on this computer")
        await expect(button).to_have_attribute("aria-pressed", "false")
        await button.click()
        await expect(button).to_have_attribute("aria-pressed", "true")
        await expect(console.page.locator("#toasts")).to_contain_text(
            "Desktop notifications are on for this computer."
        )
        assert await console.page.evaluate("localStorage.getItem('handoffs.desktopNotifications')") == "on"
        await console.set_hidden(True)  # they work in another window now

    # A normal escalation for nobody in particular: no pop-up.
    await escalate(a, actors["jane"], "Normal: Teams calls drop")
    # An urgent one: everyone who opted in, with a beep.
    urgent = await escalate(a, actors["jane"], "Server room is too hot", priority="urgent")
    for console in (sam, olivia):
        [note] = await notified(console, 1)
        assert note == {
            "title": "Urgent: Escalation from Jane Doe",
            "body": "Server room is too hot",
            "tag": f"created:{urgent}",
        }
        assert await console.page.evaluate("window.__beeps") == 1
    # One raised for Sam: Sam only, no beep (not urgent).
    for_sam = await escalate(a, actors["jane"], "Sam: the CFO's laptop", target_user_id=str(actors["sam"].id))
    notes_sam = await notified(sam, 2)
    assert notes_sam[1]["title"] == "Escalation from Jane Doe for you"
    assert await sam.page.evaluate("window.__beeps") == 1

    # Nobody picks Sam's up: level 1 tells Olivia (the owners), whose desktop says so.
    await move_ladder(db, for_sam, started_ago=700, due_in=-100)
    async with job_context(settings, redis) as jc:
        assert await step_up_due(jc) == 1
        notes_olivia = await notified(olivia, 2)
    assert notes_olivia[1]["title"] == "Nobody has picked this up"
    assert notes_olivia[1]["tag"] == f"escalated:{for_sam}:1"
    assert "Escalation from Jane" in notes_olivia[1]["body"]
    await expect(card(olivia, for_sam)).to_have_attribute("data-ladder", "overdue")
    assert len(await notes(sam)) == 2  # Sam was told at creation: not a recipient of the step

    # Looking at the tab: the page shows it, no pop-up. Ada never opted in: nothing, ever.
    await sam.set_hidden(False)
    await sam.page.bring_to_front()
    focused = await escalate(a, actors["jane"], "Urgent: the website is down", priority="urgent")
    await notified(olivia, 3)
    await expect(card(sam, focused)).to_have_attribute("data-arrived", "live")
    assert len(await notes(sam)) == 2
    assert await notes(ada) == []

    # The choice is remembered on this computer; turned off, it stays off.
    await olivia.page.reload()
    await olivia.wait_live()
    button = olivia.page.get_by_role("button", name="Notify me on this computer")
    await expect(button).to_have_attribute("aria-pressed", "true")
    await olivia.page.screenshot(path=artifact("notify-on.png"))
    await button.click()
    await expect(button).to_have_attribute("aria-pressed", "false")
    await olivia.set_hidden(True)
    await escalate(a, actors["jane"], "Urgent: phones are down", priority="urgent")
    await expect(card(olivia, focused)).to_be_visible()
    await expect(olivia.page.locator(".card")).to_have_count(5)
    assert await notes(olivia) == []  # a fresh page: nothing recorded since it turned off
    assert sam.errors + olivia.errors + ada.errors == []
