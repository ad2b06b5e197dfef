"""The console in a real browser (Debian's Chromium through Playwright) against two real API replicas.

Each person is a browser context of their own (their own cookie jar), on one
of two uvicorn replicas, so live events cross processes through Redis as in
production. The arq worker runs in this process against the same database and
Redis; where a test needs to see an assessment *arrive*, it starts the worker
only once the page is showing the pending state.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.config import Settings
from handoffs.db.models import SessionHandoff
from tests.conftest import Actor
from tests.support.browser import DESKTOP, PHONE, Console, Open, artifact
from tests.support.workers import fast_settings, run_jobs

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean_redis")]


@pytest.fixture(autouse=True)
def _expect_timeout() -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=20_000)  # generous: a loaded CI machine, never a fixed sleep


def worker_settings(settings: Settings, **changes: Any) -> Settings:
    """Quick retries, but time enough per job on a busy machine (a timed-out job is retried, not failed)."""
    return fast_settings(settings, job_timeout_seconds=60, **changes)


def expect(target: Any) -> Any:
    from playwright.async_api import expect as playwright_expect

    return playwright_expect(target)


async def escalate_in_the_ui(jane: Console) -> tuple[str, str]:
    """Jane creates a session, adds to its transcript and escalates it, all through the pages."""
    page = jane.page
    await page.get_by_role("button", name="New session").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Title").fill("Outlook sync")
    await dialog.get_by_label("Problem summary").fill(
        "Outlook is failing to sync email for the finance team since Tuesday's update"
    )
    await dialog.get_by_label("PSA ticket").fill("12345")
    await dialog.get_by_role("button", name="Create session").click()
    await page.wait_for_url(re.compile(r"/sessions/[0-9a-f-]{36}$"))
    session_id = page.url.rsplit("/", 1)[1]

    await page.get_by_label("Message").fill("Outlook shows 'Disconnected' in the status bar")
    await page.get_by_role("button", name="Add to transcript").click()
    await expect(page.locator(".transcript .message")).to_have_count(1)

    await page.get_by_label("Notes for the senior").fill("Rebuilt the Outlook profile; still failing")
    await page.get_by_label("Priority").select_option("high")
    await page.get_by_role("button", name="Escalate", exact=True).click()
    await expect(page.locator("#session-notice")).to_contain_text("waiting for a senior in the team queue")
    href = await page.get_by_role("link", name="Open the handoff").get_attribute("href")
    assert href is not None
    await jane.wait_live()
    await jane.mark()
    return session_id, href.rsplit("/", 1)[1]


async def escalate_by_api(
    url: str,
    jane: Actor,
    *,
    summary: str = "Printer offline",
    ticket: str | None = "777",
    priority: str = "normal",
    title: str = "Printer",
) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=url, headers=jane.headers) as http:
        body: dict[str, Any] = {"title": title, "problem_summary": summary}
        if ticket:
            body["psa_ticket_id"] = ticket
        session = (await http.post("/api/v1/ai-sessions", json=body)).json()
        response = await http.post(
            f"/api/v1/ai-sessions/{session['id']}/handoff",
            json={"intent": "escalate", "engineer_notes": "Power-cycled it", "priority": priority},
        )
        assert response.status_code == 201, response.text
        return session["id"], response.json()["id"]


async def claimed_by(db: AsyncSession, handoff_id: str) -> Any:
    db.expire_all()
    return await db.scalar(select(SessionHandoff.claimed_by).where(SessionHandoff.id == handoff_id))


async def test_escalation_arrives_live_one_pick_up_wins_and_the_assessment_fills_in(
    window: Open, replicas: list[str], settings: Settings, db: AsyncSession, actors: dict[str, Actor]
) -> None:
    a, b = replicas
    # Two escalations are already waiting: an urgent one and a normal one.
    _, urgent = await escalate_by_api(
        a,
        actors["jane"],
        title="Server room",
        summary="Server room is too hot",
        ticket=None,
        priority="urgent",
    )
    _, normal = await escalate_by_api(
        a, actors["jane"], title="Printer", summary="Printer on floor 2 is offline"
    )
    jane = await window(a, "jane@acme.test", form=True)
    sam = await window(a, "sam@acme.test")
    ada = await window(b, "ada@acme.test", reduced_motion="reduce")
    olivia = await window(b, "olivia@acme.test")
    gus = await window(b, "gus@globex.test")
    seniors = (sam, ada, olivia)
    for console in seniors:
        await console.wait_live()
        await expect(console.page.locator(".card")).to_have_count(2)
        await expect(console.page.locator("#bell-count")).to_have_text("2")
        await console.mark()
    await gus.wait_live()
    await expect(gus.page.locator(".card")).to_have_count(0)
    await sam.set_hidden(True)  # Sam is in another tab: the title counts what he has not seen

    session_id, handoff_id = await escalate_in_the_ui(jane)

    # The card slides into every senior's queue at its place (urgent, then high, then normal), no reload.
    for console in seniors:
        card = console.page.locator(f'.card[data-id="{handoff_id}"]')
        await expect(card).to_have_attribute("data-arrived", "live")
        await expect(card.locator('[data-slot="creator"]')).to_have_text("Jane Doe")
        await expect(card.locator('[data-slot="ticket"]')).to_have_text("#12345")
        await expect(card.locator('[data-slot="priority"]')).to_have_text("High")
        await expect(card.locator('[data-slot="link"]')).to_contain_text("Outlook is failing to sync email")
        await expect(card.locator('[data-slot="waiting"]')).to_have_text(re.compile(r"^waiting \d+ s$"))
        order = await console.page.locator(".card").evaluate_all("cards => cards.map(c => c.dataset.id)")
        assert order == [urgent, handoff_id, normal]
        assert await console.same_document()
    await expect(sam.page.locator(f'.card[data-id="{handoff_id}"]')).to_have_attribute(
        "data-entered", "animated"
    )
    # Under prefers-reduced-motion the card appears without moving.
    await expect(ada.page.locator(f'.card[data-id="{handoff_id}"]')).to_have_attribute(
        "data-entered", "instant"
    )
    # The bell went up for every recipient.
    for console in seniors:
        await expect(console.page.locator("#bell-count")).to_have_text("3")
        await expect(console.page.locator("#bell-button")).to_have_attribute(
            "aria-label", "Notifications, 3 unread"
        )
    await expect(sam.page).to_have_title(re.compile(r"^\(1\) New arrival · Console · handoffs$"))  # flashing
    await sam.set_hidden(False)
    await expect(sam.page).to_have_title("Console · handoffs")

    await sam.page.screenshot(path=artifact("queue.png"))
    await sam.page.get_by_role("button", name="Notifications, 3 unread").click()
    panel = sam.page.locator("#bell-panel")
    await expect(panel.locator(".notif-title")).to_have_count(3)
    await expect(panel.locator(".notif-title").first).to_have_text(
        "Escalation from Jane · #12345: Outlook is failing to sync email for the finance team since Tuesday's…"
    )
    await sam.page.screenshot(path=artifact("bell.png"))
    await sam.page.keyboard.press("Escape")
    await expect(panel).to_be_hidden()

    # Sam and Ada pick it up at the same moment: real clicks, sent together.
    boxes = []
    for console in (sam, ada):
        box = await console.page.locator(
            f'.card[data-id="{handoff_id}"] [data-action="claim"]'
        ).bounding_box()
        assert box is not None
        boxes.append(box)
    await asyncio.gather(
        *(
            console.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            for console, box in zip((sam, ada), boxes, strict=True)
        )
    )
    context_url = re.compile(rf"/sessions/{session_id}/handoffs/{handoff_id}$")
    waits = {asyncio.ensure_future(console.page.wait_for_url(context_url)): console for console in (sam, ada)}
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED, timeout=20)
    assert len(done) == 1, "nobody reached the handoff context screen"
    winner = waits[done.pop()]
    loser = ada if winner is sam else sam
    winner_first = "Sam" if winner is sam else "Ada"

    # The loser is told who won, not shown an error; the card leaves their queue.
    await expect(loser.page.locator("#claim-notice")).to_have_text(
        re.compile(rf"^{winner_first} picked this up \d+ s ago\.$")
    )
    for console in (loser, olivia):  # every open queue, without a click
        await expect(console.page.locator(f'.card[data-id="{handoff_id}"]')).to_have_count(0)
        await expect(console.page.locator(".card")).to_have_count(2)
    assert await olivia.same_document()
    loser_navigated = pending.pop()
    assert not loser_navigated.done(), "the loser must stay on the queue"
    loser_navigated.cancel()
    assert str(await claimed_by(db, handoff_id)) == str(actors[winner_first.lower()].id)

    # The winner reads the context while the assessment is made; it appears without a reload.
    page = winner.page
    await expect(page.locator("#handoff-title")).to_contain_text("Outlook is failing to sync email")
    await expect(page.locator(".status-bar")).to_contain_text("You picked this up")
    await expect(page.locator(".transcript .message")).to_contain_text("Disconnected")
    await expect(page.get_by_text("Rebuilt the Outlook profile; still failing")).to_be_visible()
    await expect(page.locator("#part-assessment [data-assessment-state]")).to_have_attribute(
        "data-assessment-state", "pending"
    )
    await winner.mark()
    await run_jobs(worker_settings(settings))
    assessment = page.locator("#part-assessment [data-assessment-state]")
    await expect(assessment).to_have_attribute("data-assessment-state", "ready")
    await expect(assessment.locator(".likely-cause")).not_to_be_empty()
    await expect(assessment).to_contain_text("This is not an AI assessment")  # offline, and says so
    await expect(page.locator("#part-documentation .doc-markdown")).to_contain_text("Escalation")
    assert await winner.same_document()
    await page.screenshot(path=artifact("context.png"), full_page=True)

    # Jane, still on her session page, sees who picked it up; the session is in the winner's sidebar.
    winner_name = "Sam Senior" if winner is sam else "Ada Admin"
    await expect(jane.page.locator("#session-notice")).to_contain_text(f"{winner_name} is on it")
    await expect(jane.page.locator("#session-handoffs")).to_contain_text(f"{winner_name} is on it")
    claimed_pill = f'#sidebar-list [data-session-id="{session_id}"] .pill-status-claimed'
    await expect(jane.page.locator(claimed_pill)).to_have_text("Claimed")
    assert await jane.same_document()
    await expect(page.locator(claimed_pill)).to_have_text("Claimed")

    # Globex saw nothing of it.
    await expect(gus.page.locator(".card")).to_have_count(0)
    await expect(gus.page.locator("#bell-count")).to_be_hidden()
    assert not any(handoff_id in url for url in gus.requests)
    for console in (jane, sam, ada, olivia, gus):
        assert console.errors == [], f"{console.email}: {console.errors}"


async def test_viewer_sees_no_queue_no_pick_up_and_opens_no_stream(
    window: Open, replicas: list[str], actors: dict[str, Actor]
) -> None:
    session_id, handoff_id = await escalate_by_api(replicas[0], actors["jane"])
    victor = await window(replicas[1], "victor@acme.test")
    page = victor.page
    await expect(page.get_by_role("heading", name="Hello, Victor")).to_be_visible()
    await expect(page.locator("#queue")).to_have_count(0)
    await expect(page.get_by_role("button", name="Pick up")).to_have_count(0)
    await expect(page.get_by_role("button", name="New session")).to_have_count(0)
    assert await page.evaluate("document.documentElement.dataset.stream") == "off"

    # The account's handoffs, read-only: the list, then the detail, with no action anywhere.
    await page.get_by_role("link", name="all handoffs", exact=True).click()
    await page.wait_for_url(re.compile(r"/handoffs$"))
    row = page.locator(f'.handoff-row[data-id="{handoff_id}"]')
    await expect(row).to_contain_text("Printer offline")
    await expect(row.locator(".pill-state-open")).to_have_text("Waiting")
    await page.screenshot(path=artifact("viewer-handoffs.png"), full_page=True)
    await row.get_by_role("link", name="Printer offline").click()
    await page.wait_for_url(re.compile(rf"/sessions/{session_id}/handoffs/{handoff_id}$"))
    await expect(page.locator(".status-bar")).to_contain_text("Waiting in the queue")
    await expect(page.locator("#part-timeline")).to_contain_text("Jane Doe escalated this")
    await expect(page.locator("#comments")).to_contain_text("No comments yet.")
    await expect(page.locator("#part-status button, #part-status form, [data-comment-form]")).to_have_count(0)
    await expect(page.get_by_role("button", name="Pick up")).to_have_count(0)
    await page.screenshot(path=artifact("viewer-context.png"), full_page=True)
    assert not any("escalations/stream" in url for url in victor.requests)
    assert victor.errors == []


async def test_failed_assessment_shows_the_reason_live(
    window: Open, replicas: list[str], settings: Settings, actors: dict[str, Actor]
) -> None:
    import httpx2

    from tests.support.fake_anthropic import FakeMessagesAPI

    session_id, handoff_id = await escalate_by_api(
        replicas[0], actors["jane"], summary="VPN drops every hour"
    )
    sam = await window(replicas[1], "sam@acme.test", path=f"/sessions/{session_id}/handoffs/{handoff_id}")
    await sam.wait_live()
    state = sam.page.locator("#part-assessment [data-assessment-state]")
    await expect(state).to_have_attribute("data-assessment-state", "pending")
    await sam.mark()

    error = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    fake = FakeMessagesAPI(httpx2.Response(401, json=error))
    await run_jobs(
        worker_settings(settings, anthropic_api_key="sk-ant-test"), extra_ctx={"assessor": fake.assessor()}
    )
    await expect(state).to_have_attribute("data-assessment-state", "failed")
    alert = sam.page.locator("#part-assessment [role=alert]")
    await expect(alert).to_contain_text("The AI could not assess this.")
    await expect(alert).to_contain_text("The AI service refused the request (401)")
    # Not empty-handed: the offline summary stands in, and the documentation package is there.
    await expect(sam.page.locator("#part-assessment .assessment-fallback .likely-cause")).to_be_visible()
    await expect(sam.page.locator("#part-documentation")).not_to_contain_text("No escalation package")
    retry = alert.get_by_role("button", name="Ask the AI again")
    await expect(retry).to_be_visible()
    assert await sam.same_document()
    await sam.page.screenshot(path=artifact("context-failed.png"))

    # The bell: one unread escalation; marking it read from the panel clears the count.
    bell = sam.page.get_by_role("button", name="Notifications, 1 unread")
    await bell.click()
    item = sam.page.locator("#bell-list .notif")
    await expect(item).to_have_class(re.compile(r"\bis-unread\b"))
    await item.get_by_role("button", name=re.compile(r"^Mark as read: Escalation from Jane")).click()
    await expect(item).not_to_have_class(re.compile(r"\bis-unread\b"))
    await expect(item.locator(".notif-title")).to_be_focused()  # the keyboard stays where it was
    await expect(sam.page.locator("#bell-count")).to_be_hidden()
    await expect(sam.page.get_by_role("button", name="Notifications, 0 unread")).to_be_visible()
    await expect(sam.page.get_by_role("button", name="Mark all as read")).to_be_hidden()


async def test_sign_in_wrong_password_and_sign_out(replicas: list[str], chromium: Any) -> None:
    context = await chromium.new_context(base_url=replicas[0])
    try:
        page = await context.new_page()
        response = await page.goto("/sessions/00000000-0000-0000-0000-000000000000?x=1")
        assert response is not None
        assert page.url.endswith("/login?next=/sessions/00000000-0000-0000-0000-000000000000%3Fx%3D1")
        await page.get_by_label("Email").fill("sam@acme.test")
        await page.get_by_label("Password").fill("wrong")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
        await expect(page.get_by_label("Password")).to_be_focused()
        await page.get_by_label("Password").fill("demo")
        await page.get_by_label("Password").press("Enter")
        await page.wait_for_url(re.compile(r"/sessions/0{8}-"))
        await expect(
            page.get_by_role("heading", name="Not found")
        ).to_be_visible()  # signed in; no such session

        await page.goto("/")
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(re.compile(r"/login$"))
        cookies = {c["name"] for c in await context.cookies()}
        assert "handoffs_session" not in cookies
        await page.goto("/")
        assert "/login?next=" in page.url
    finally:
        await context.close()


async def test_phone_width_keyboard_pick_up(
    window: Open, replicas: list[str], actors: dict[str, Actor]
) -> None:
    _, first = await escalate_by_api(
        replicas[0], actors["jane"], summary="Printer offline", priority="normal"
    )
    _, urgent = await escalate_by_api(
        replicas[0], actors["jane"], summary="Server room is too hot", ticket=None, priority="urgent"
    )
    ada = await window(replicas[1], "ada@acme.test", viewport=PHONE)
    page = ada.page
    cards = page.locator(".card")
    await expect(cards).to_have_count(2)
    assert await cards.evaluate_all("cards => cards.map(c => c.dataset.id)") == [
        urgent,
        first,
    ]  # urgent first
    no_overflow = "document.documentElement.scrollWidth <= window.innerWidth"
    assert await page.evaluate(no_overflow)
    await page.screenshot(path=artifact("queue-phone.png"), full_page=True)

    # Every action is reachable from the keyboard, with a visible focus ring.
    pick_up = page.locator(f'.card[data-id="{urgent}"] [data-action="claim"]')
    for _ in range(40):
        await page.keyboard.press("Tab")
        if await pick_up.evaluate("el => el === document.activeElement"):
            break
    else:
        pytest.fail("Pick up was not reachable with Tab")
    outline = await pick_up.evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline == "solid"
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(rf"/handoffs/{urgent}$"))
    await expect(page.locator(".status-bar")).to_contain_text("You picked this up")
    assert await page.evaluate(no_overflow)
    await page.screenshot(path=artifact("context-phone.png"), full_page=True)

    # Changed her mind: back in the queue, and the status says so at once.
    await page.get_by_role("button", name="Put back in the queue").click()
    await expect(page.locator(".status-bar")).to_contain_text("Waiting in the queue")
    await expect(page.get_by_role("button", name="Pick up")).to_be_visible()


async def test_stream_reconnects_after_a_replica_restart_and_resyncs_when_history_is_gone(
    window: Open, replicas: list[str], settings: Settings, actors: dict[str, Actor], redis: Any
) -> None:
    from urllib.parse import urlsplit

    from handoffs.events import stream_key
    from tests.support.browser import start_replica

    fast = {"SSE_RETRY_MS": "250", "SSE_KEEPALIVE_SECONDS": "1"}
    replica = start_replica(settings, **fast)
    port = urlsplit(replica.url).port
    try:
        _, first = await escalate_by_api(replicas[0], actors["jane"], summary="Printer offline")
        sam = await window(replica.url, "sam@acme.test")
        page = sam.page
        await sam.wait_live()
        await sam.mark()
        await expect(page.locator(".card")).to_have_count(1)
        status = page.locator("#live-status")
        await expect(status).to_be_hidden()

        # The replica dies: the page says so, and the browser keeps trying.
        replica.kill()
        await expect(status).to_have_text("Reconnecting…")
        _, second = await escalate_by_api(
            replicas[0], actors["jane"], summary="Scanner jams", priority="high"
        )
        replica = start_replica(settings, port, **fast)
        # Back with Last-Event-ID: the missed escalation is replayed, in its place (high before normal).
        await expect(status).to_be_hidden()
        await expect(page.locator(".card")).to_have_count(2)
        ids = await page.locator(".card").evaluate_all("cards => cards.map(c => c.dataset.id)")
        assert ids == [second, first]
        reloads = [url for url in sam.requests if url.endswith("/api/v1/ai-sessions/queue")]
        assert reloads == [], "a replay needs no reload of the queue"

        # Again, but this time the history the browser would resume from is gone: `resync` reloads the queue.
        replica.kill()
        await expect(status).to_have_text("Reconnecting…")
        _, third = await escalate_by_api(replicas[0], actors["jane"], summary="Wi-Fi slow", priority="urgent")
        await redis.delete(stream_key(actors["jane"].account_id))
        replica = start_replica(settings, port, **fast)
        await expect(status).to_be_hidden()
        await expect(page.locator(".card")).to_have_count(3)
        ids = await page.locator(".card").evaluate_all("cards => cards.map(c => c.dataset.id)")
        assert ids == [third, second, first]
        assert any(url.endswith("/api/v1/ai-sessions/queue") for url in sam.requests)
        assert await sam.same_document()
    finally:
        replica.stop()


async def bell_panel_box(console: Console) -> dict[str, float]:
    page = console.page
    await page.locator("#bell-button").click()
    panel = page.locator("#bell-panel")
    await expect(panel.locator(".notif")).not_to_have_count(0)
    box = await panel.bounding_box()
    assert box is not None
    return dict(box)


async def test_bell_panel_stays_on_screen_at_phone_and_desktop_width(
    window: Open, replicas: list[str], actors: dict[str, Actor]
) -> None:
    await escalate_by_api(replicas[0], actors["jane"], summary="Printer offline")
    for name, viewport in (
        ("phone", PHONE),
        ("tablet", {"width": 768, "height": 1024}),
        ("desktop", DESKTOP),
    ):
        sam = await window(replicas[1], "sam@acme.test", viewport=viewport)
        box = await bell_panel_box(sam)
        width = viewport["width"]
        assert box["x"] >= 0, f"{name}: {box} starts left of the screen"
        assert box["x"] + box["width"] <= width, f"{name}: {box} ends right of the screen ({width})"
        assert box["y"] >= 0
        # The panel hangs below the bell, and still below it when the page is scrolled to the top.
        bell = await sam.page.locator("#bell-button").bounding_box()
        assert bell is not None
        assert box["y"] >= bell["y"] + bell["height"]
        await sam.page.screenshot(path=artifact(f"bell-{name}.png"))
        await sam.page.keyboard.press("Escape")
        await expect(sam.page.locator("#bell-panel")).to_be_hidden()
        assert sam.errors == [], sam.errors


#: A transcript as engineers and the model write it: Markdown, a long command, a long URL.
MESSAGES = [
    ("user", "Outlook says **Disconnected** in the status bar.\nTried:\n- safe mode\n- a *new* profile"),
    (
        "assistant",
        "Check the mailbox with `Get-MailboxStatistics`:\n\n```\n"
        "Get-MailboxStatistics -Identity jane@acme.test | Format-List DisplayName,TotalItemSize,ItemCount,"
        "LastLogonTime,StorageLimitStatus,DeletedItemCount\n```\n\n"
        "See https://learn.example.com/troubleshoot/outlook/outlook-disconnected-after-the-tuesday-update-"
        "and-a-very-long-path-segment and [the KB](https://support.example.com/kb/12345). "
        "Not [this](javascript:alert(1)).",
    ),
    ("tool", "**raw** output of C:\\Users\\jane\\AppData\\Local\\Microsoft\\Outlook\\__jane__.ost"),
]


async def escalate_with_a_transcript(url: str, jane: Actor) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=url, headers=jane.headers) as http:
        body = {"title": "Outlook sync", "problem_summary": "Outlook disconnected", "psa_ticket_id": "12345"}
        session = (await http.post("/api/v1/ai-sessions", json=body)).json()
        for role, content in MESSAGES:
            response = await http.post(
                f"/api/v1/ai-sessions/{session['id']}/messages", json={"role": role, "content": content}
            )
            assert response.status_code == 201, response.text
        response = await http.post(
            f"/api/v1/ai-sessions/{session['id']}/handoff",
            json={"intent": "escalate", "engineer_notes": "Rebuilt the **Outlook profile**; still failing"},
        )
        assert response.status_code == 201, response.text
        return session["id"], response.json()["id"]


async def open_in_zone(
    chromium: Any, base_url: str, email: str, path: str, timezone_id: str, viewport: dict[str, int]
) -> Console:
    """A signed-in window whose browser runs in ``timezone_id`` (and en-US, so the format is known)."""
    context = await chromium.new_context(
        base_url=base_url, viewport=viewport, timezone_id=timezone_id, locale="en-US"
    )
    context.set_default_timeout(20_000)
    console = Console(context, await context.new_page(), base_url, email)
    await console.sign_in()
    await console.page.goto(path)
    return console


def clock_in(iso: str, zone: str) -> tuple[str, str]:
    """``("9:05 AM", "EST")``: what Intl's en-US hour/minute format shows for ``iso`` in ``zone``."""
    at = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
    return f"{at.hour % 12 or 12}:{at.minute:02d} {'AM' if at.hour < 12 else 'PM'}", at.tzname() or ""


async def test_transcript_notes_and_ticket_note_render_markdown_with_times_in_the_browsers_zone(
    chromium: Any, replicas: list[str], settings: Settings, actors: dict[str, Actor]
) -> None:
    session_id, handoff_id = await escalate_with_a_transcript(replicas[0], actors["jane"])
    await run_jobs(worker_settings(settings))  # the (offline) assessment and its ticket note
    path = f"/sessions/{session_id}/handoffs/{handoff_id}"
    opened: list[Console] = []
    try:
        for zone, viewport, shot in (
            ("America/New_York", PHONE, "markdown-phone.png"),
            ("Asia/Kolkata", DESKTOP, "markdown-desktop.png"),
        ):
            sam = await open_in_zone(chromium, replicas[1], "sam@acme.test", path, zone, viewport)
            opened.append(sam)
            page = sam.page
            messages = page.locator(".transcript .message")
            await expect(messages).to_have_count(3)

            # Markdown, not its source: bold, a list, code, a code block, links.
            user, assistant, tool = (messages.nth(i).locator(".message-body") for i in range(3))
            await expect(user.locator("strong")).to_have_text("Disconnected")
            await expect(user.locator("li")).to_have_text(["safe mode", "a new profile"])
            await expect(user.locator("em")).to_have_text("new")
            assert "*" not in await user.inner_text()
            await expect(assistant.locator("p code")).to_have_text("Get-MailboxStatistics")
            await expect(assistant.locator("pre code")).to_contain_text("Format-List DisplayName")
            kb = assistant.get_by_role("link", name="the KB")
            await expect(kb).to_have_attribute("href", "https://support.example.com/kb/12345")
            await expect(kb).to_have_attribute("rel", "noopener noreferrer nofollow")
            await expect(assistant.locator('a[href^="https://learn.example.com/"]')).to_have_count(1)
            await expect(page.locator('a[href^="javascript:"]')).to_have_count(0)
            await expect(assistant).to_contain_text("Not [this](javascript:alert(1)).")
            # Tool output is shown as it came: its asterisks and underscores are not Markdown.
            await expect(tool).to_have_text(MESSAGES[2][1])
            await expect(page.locator(".notes strong")).to_have_text("Outlook profile")

            # The ticket note is rendered (headings, bold roles), not shown as Markdown source...
            note = page.locator("#part-documentation .doc-markdown")
            await expect(note.locator("h5").first).to_have_text("Escalation: Outlook sync (ticket #12345)")
            await expect(note.locator("h6").first).to_have_text("Problem")
            await expect(note.locator("li strong").filter(has_text=re.compile(r"^user$"))).to_have_count(1)
            assert "**" not in await note.inner_text()
            assert "## " not in await note.inner_text()
            # ...with the source a click away, for copying into a ticket by hand.
            source = page.locator("#part-documentation .doc-source")
            await expect(source.locator("pre")).to_be_hidden()
            await source.locator("summary").click()
            await expect(source.locator("pre")).to_contain_text("## Escalation: Outlook sync")
            await source.locator("summary").click()

            # Long lines: the code block scrolls inside the message, a long URL wraps; the page never scrolls sideways.
            code = assistant.locator("pre")
            assert await code.evaluate("el => el.scrollWidth > el.clientWidth"), (
                "the code block should scroll"
            )
            assert await code.evaluate("el => getComputedStyle(el).overflowX") == "auto"
            assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            body_box = await assistant.bounding_box()
            assert body_box is not None
            assert body_box["x"] + body_box["width"] <= viewport["width"]

            # Clock times in the browser's zone, not UTC; the hover text has the date and zone.
            clocks = page.locator(".transcript time[data-clock]")
            await expect(clocks).to_have_count(3)
            await expect(clocks.first).to_have_attribute("data-clock", "local")
            for i in range(3):
                clock = clocks.nth(i)
                iso = await clock.get_attribute("datetime")
                assert iso is not None
                assert iso.endswith("Z")
                text = " ".join((await clock.inner_text()).split())  # Intl puts U+202F before AM/PM
                hm, tzname = clock_in(iso, zone)
                assert text.startswith(hm), f"{zone}: {text!r}, expected {hm}"
                assert "UTC" not in text
                if zone == "America/New_York":
                    assert text == f"{hm} {tzname}"
                else:
                    assert text in (f"{hm} GMT+5:30", f"{hm} {tzname}")
                title = await clock.get_attribute("title") or ""
                assert hm.split()[0] in title, title
                assert iso[:4] in title, title
            # Relative times still tick, and say when in the browser's zone on hover.
            ago = page.locator("time[data-ago]").first
            await expect(ago).to_have_text(re.compile(r"^\d+ (s|min) ago$"))
            assert "M" in (await ago.get_attribute("title") or "")

            await page.evaluate("window.scrollTo(0, 0)")  # else the sticky header lands mid-picture
            await page.screenshot(path=artifact(shot), full_page=True)
            assert sam.errors == [], f"{zone}: {sam.errors}"  # a CSP refusal (an inline style) is one

        # The session page: the same transcript macro, the same rendering and times.
        sam = opened[0]
        await sam.page.goto(f"/sessions/{session_id}")
        await expect(sam.page.locator(".transcript .message-user strong")).to_have_text("Disconnected")
        clock = sam.page.locator(".transcript time[data-clock]").first
        await expect(clock).to_have_attribute("data-clock", "local")
        iso = await clock.get_attribute("datetime")
        assert iso is not None
        await expect(clock).to_have_text(re.compile("^" + re.escape(clock_in(iso, "America/New_York")[0])))
        assert sam.errors == []
    finally:
        for console in opened:
            await console.close()


async def test_the_junior_sees_pick_up_question_reassign_and_resolve_live(
    window: Open, replicas: list[str], actors: dict[str, Actor]
) -> None:
    a, b = replicas
    session_id, handoff_id = await escalate_by_api(
        a, actors["jane"], title="Outlook password", summary="Outlook keeps asking for the password"
    )
    context = f"/sessions/{session_id}/handoffs/{handoff_id}"
    jane = await window(a, "jane@acme.test", path=f"/sessions/{session_id}")
    sam = await window(b, "sam@acme.test")
    ada = await window(a, "ada@acme.test", path=context)
    for console in (jane, sam, ada):
        await console.wait_live()
        await console.mark()
    notice = jane.page.locator("#session-notice")
    history = jane.page.locator("#session-handoffs")
    jane_bell = jane.page.locator("#bell-count")
    await expect(notice).to_contain_text("waiting for a senior")
    await expect(history).to_contain_text("waiting for a senior")
    await expect(jane_bell).to_be_hidden()
    # Jane created it: she may withdraw it, not pick it up (seen on the context screen).
    jane_context = await window(b, "jane@acme.test", path=context)
    await expect(jane_context.page.get_by_role("button", name="Withdraw")).to_be_visible()
    await expect(jane_context.page.get_by_role("button", name="Pick up")).to_have_count(0)
    await jane_context.close()

    # 1. Sam picks it up from the queue.
    await sam.page.locator(f'.card[data-id="{handoff_id}"] [data-action="claim"]').click()
    await sam.page.wait_for_url(re.compile(rf"{context}$"))
    await sam.wait_live()
    await sam.mark()  # from here on his context screen follows by itself
    await expect(notice).to_contain_text("Sam Senior is on it")
    await expect(history).to_contain_text("Sam Senior is on it")
    await expect(notice).not_to_contain_text("waiting")
    await expect(history).not_to_contain_text("waiting")
    await expect(jane_bell).to_have_text("1")
    await expect(ada.page.locator(".status-bar")).to_contain_text("Sam Senior picked this up")
    await jane.page.screenshot(path=artifact("lifecycle-1-picked-up.png"), full_page=True)

    # 2. Sam asks a question; it appears on Jane's page, as text, with its line break.
    await sam.page.get_by_label("Add a comment").fill("Does it happen on webmail too?\nOr only in the app?")
    await sam.page.get_by_role("button", name="Comment", exact=True).click()
    jane_comments = jane.page.locator("#comments .comment")
    await expect(jane_comments).to_have_count(1)
    await expect(jane_comments.first.locator(".comment-author")).to_have_text("Sam Senior")
    assert await jane_comments.first.locator(".comment-body").inner_text() == (
        "Does it happen on webmail too?\nOr only in the app?"
    )
    await expect(jane_bell).to_have_text("2")

    # 3. Jane answers from her session page; HTML in it stays text on Sam's screen.
    await jane.page.get_by_label("Add a comment").fill("Only in the app <b>desktop</b>, webmail is fine")
    await jane.page.get_by_role("button", name="Comment", exact=True).click()
    sam_comments = sam.page.locator("#comments .comment")
    await expect(sam_comments).to_have_count(2)
    await expect(sam_comments.nth(1)).to_contain_text("Only in the app <b>desktop</b>, webmail is fine")
    await expect(sam_comments.nth(1).locator("b")).to_have_count(0)
    await expect(jane_comments).to_have_count(2)  # her own, once (the answer and the event name one id)
    await expect(sam.page.locator("#part-timeline")).to_contain_text("Jane Doe commented")
    await sam.page.evaluate("window.scrollTo(0, 0)")  # else the sticky header lands mid-picture
    await sam.page.screenshot(path=artifact("lifecycle-2-comments.png"), full_page=True)

    # 4. Sam hands it to Ada, with a note.
    await sam.page.get_by_label("Hand it to").select_option(label="Ada Admin (admin)")
    await sam.page.get_by_role("textbox", name="Note").fill("Needs Exchange admin rights")
    await sam.page.get_by_role("button", name="Reassign").click()
    await expect(sam.page.locator(".status-bar")).to_contain_text("Ada Admin picked this up")
    await expect(sam.page.get_by_role("button", name="Resolve")).to_have_count(0)  # no longer his
    await expect(ada.page.locator(".status-bar")).to_contain_text("You picked this up")
    await expect(ada.page.locator("#part-timeline")).to_contain_text(
        "Sam Senior handed this to Ada Admin: Needs Exchange admin rights"
    )
    await expect(notice).to_contain_text("Ada Admin is on it")
    await expect(history).to_contain_text("Ada Admin is on it")
    await expect(jane_bell).to_have_text("3")

    # 5. Ada resolves it.
    await ada.page.get_by_label("Resolution").fill("Removed the stale **credential manager** entry")
    await ada.page.get_by_label("Outcome").select_option("workaround")
    await ada.page.get_by_role("button", name="Resolve").click()
    await expect(ada.page.locator(".status-bar")).to_contain_text("Resolved by Ada Admin (workaround)")
    await expect(ada.page.locator(".status-bar .resolution strong")).to_have_text("credential manager")
    await expect(ada.page.locator("#part-timeline .tl").last).to_contain_text(
        "Ada Admin resolved it (workaround)"
    )
    await ada.page.evaluate("window.scrollTo(0, 0)")
    await ada.page.screenshot(path=artifact("lifecycle-3-resolved-context.png"), full_page=True)
    await expect(notice).to_contain_text("Resolved by Ada Admin (workaround)")
    await expect(notice.locator(".notice-quote strong")).to_have_text("credential manager")
    await expect(history).to_contain_text("resolved by Ada Admin (workaround)")
    await expect(jane.page.locator("#session-status")).to_have_text("Resolved")
    await expect(jane.page.locator("#message-form")).to_be_hidden()  # it takes no more messages
    await expect(jane_bell).to_have_text("4")
    await jane.page.screenshot(path=artifact("lifecycle-4-junior-resolved.png"), full_page=True)

    # Jane's bell tells the story, newest first.
    await jane.page.get_by_role("button", name="Notifications, 4 unread").click()
    titles = jane.page.locator("#bell-list .notif-title")
    await expect(titles).to_have_count(4)
    await expect(titles.first).to_contain_text("Ada Admin resolved")
    await expect(jane.page.locator("#bell-list .notif-state").first).to_have_text("Resolved")
    await jane.page.screenshot(path=artifact("lifecycle-5-junior-bell.png"))
    # Ada's own bell: the escalation she was sent reads as resolved, not as waiting.
    await ada.page.get_by_role("button", name=re.compile(r"^Notifications")).click()
    escalation = ada.page.locator("#bell-list .notif").filter(has_text="Escalation from Jane")
    await expect(escalation.locator(".notif-state")).to_have_text("Resolved")
    await ada.page.screenshot(path=artifact("lifecycle-6-admin-bell.png"))

    for console in (jane, sam, ada):
        assert await console.same_document(), console.email
        assert console.errors == [], f"{console.email}: {console.errors}"


async def test_a_lost_race_shows_the_servers_reason(
    window: Open, replicas: list[str], actors: dict[str, Actor]
) -> None:
    session_id, handoff_id = await escalate_by_api(replicas[0], actors["jane"], summary="Scanner jams")
    context = f"/sessions/{session_id}/handoffs/{handoff_id}"
    actions = f"/api/v1/ai-sessions/{session_id}/handoffs/{handoff_id}"
    # Sam's and Olivia's pages hear no events: the other side's change has not reached them yet.
    sam = await window(replicas[1], "sam@acme.test")
    olivia = await window(replicas[1], "olivia@acme.test")
    for console in (sam, olivia):
        await console.page.route("**/escalations/stream*", lambda route: route.abort())
        await console.page.goto(context)
    async with httpx.AsyncClient(base_url=replicas[0], headers=actors["ada"].headers) as ada:
        assert (await ada.post(f"{actions}/claim")).status_code == 200
        # Sam clicks Pick up on what his page still shows as open: he reads who won.
        await sam.page.get_by_role("button", name="Pick up").click()
        error = sam.page.locator("#action-error")
        await expect(error).to_have_text(re.compile(r"^Ada picked this up \d+ s ago\.$"))
        await expect(sam.page.locator(".status-bar")).to_contain_text("Ada Admin picked this up")
        await expect(sam.page.get_by_role("button", name="Pick up")).to_have_count(0)

        # Olivia (owner) resolves what Ada resolved a moment before: the 409's detail, in words.
        await olivia.page.reload()
        await olivia.page.get_by_label("Resolution").fill("Cleaned the rollers")
        resolved = await ada.post(f"{actions}/resolve", json={"resolution": "Replaced the rollers"})
        assert resolved.status_code == 200, resolved.text
    await olivia.page.get_by_role("button", name="Resolve").click()
    error = olivia.page.locator("#action-error")
    await expect(error).to_have_text("Only a claimed handoff can be resolved. It is resolved.")
    await expect(olivia.page.locator(".status-bar")).to_contain_text("Resolved by Ada Admin (fixed)")
    await olivia.page.screenshot(path=artifact("lost-race.png"))
    for console in (sam, olivia):
        assert console.errors == [], f"{console.email}: {console.errors}"


async def test_queue_switch_search_and_for_you_cards(
    window: Open, replicas: list[str], actors: dict[str, Actor]
) -> None:
    a, b = replicas
    _, printer = await escalate_by_api(a, actors["jane"], summary="Printer offline")
    async with httpx.AsyncClient(base_url=a, headers=actors["jane"].headers) as http:
        session = (
            await http.post("/api/v1/ai-sessions", json={"title": "VPN", "problem_summary": "VPN drops"})
        ).json()
        body = {"intent": "escalate", "priority": "high", "target_user_id": str(actors["sam"].id)}
        targeted = (await http.post(f"/api/v1/ai-sessions/{session['id']}/handoff", json=body)).json()["id"]
    sam = await window(b, "sam@acme.test")
    await sam.wait_live()
    await sam.mark()
    page = sam.page
    cards = page.locator(".card")
    await expect(cards).to_have_count(2)
    card = page.locator(f'.card[data-id="{targeted}"]')
    await expect(card).to_have_class(re.compile(r"\bis-for-you\b"))
    await expect(card.locator('[data-slot="for-you"]')).to_be_visible()
    await expect(page.locator(f'.card[data-id="{printer}"] [data-slot="for-you"]')).to_be_hidden()

    await page.get_by_role("button", name="Mine").click()
    await expect(cards).to_have_count(1)
    await expect(card).to_be_visible()
    await page.get_by_role("button", name="All open").click()
    await expect(cards).to_have_count(2)
    await page.get_by_label("Search the queue").fill("printer")
    await page.get_by_role("button", name="Search").click()
    await expect(cards).to_have_count(1)
    await expect(page.locator(f'.card[data-id="{printer}"]')).to_be_visible()
    await page.get_by_label("Search the queue").fill("")
    await page.get_by_role("button", name="Search").click()
    await expect(cards).to_have_count(2)

    # Someone claims the printer: its card leaves; released, it comes back; resolved, it is in Resolved.
    actions = f"/api/v1/ai-sessions/{session['id']}/handoffs/{targeted}"
    async with httpx.AsyncClient(base_url=a, headers=actors["ada"].headers) as ada:
        assert (await ada.post(f"{actions}/claim")).status_code == 200
        await expect(card).to_have_count(0)
        assert (await ada.post(f"{actions}/release", json={"reason": "Not mine"})).status_code == 200
        await expect(card).to_have_count(1)
        assert (await ada.post(f"{actions}/claim")).status_code == 200
        await expect(card).to_have_count(0)
        resolved = await ada.post(
            f"{actions}/resolve", json={"resolution": "New VPN profile", "outcome": "fixed"}
        )
        assert resolved.status_code == 200
    await page.get_by_role("button", name="Resolved").click()
    await expect(cards).to_have_count(1)
    await expect(card.locator('[data-slot="resolution"]')).to_have_text(
        "Resolved by Ada Admin (fixed): New VPN profile"
    )
    await expect(card.locator('[data-action="claim"]')).to_have_count(0)
    await page.screenshot(path=artifact("queue-resolved.png"))
    assert await sam.same_document()
    assert sam.errors == [], sam.errors


async def test_the_assessment_grows_on_the_context_screen_as_the_model_writes(
    window: Open, replicas: list[str], settings: Settings, actors: dict[str, Actor]
) -> None:
    """Retry after a failure, then watch the streamed assessment fill in on another replica."""
    import httpx2

    from tests.support.fake_anthropic import VALID_OUTPUT, FakeMessagesAPI, Streamed, message

    session_id, handoff_id = await escalate_by_api(
        replicas[0], actors["jane"], summary="Outlook will not sync"
    )
    error = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    ai_settings = worker_settings(settings, anthropic_api_key="sk-ant-test")
    await run_jobs(
        ai_settings, extra_ctx={"assessor": FakeMessagesAPI(httpx2.Response(401, json=error)).assessor()}
    )

    sam = await window(replicas[1], "sam@acme.test", path=f"/sessions/{session_id}/handoffs/{handoff_id}")
    await sam.wait_live()
    await sam.mark()
    state = sam.page.locator("#part-assessment [data-assessment-state]")
    await expect(state).to_have_attribute("data-assessment-state", "failed")
    await sam.page.get_by_role("button", name="Ask the AI again").click()
    await expect(state).to_have_attribute("data-assessment-state", "pending")

    slow = FakeMessagesAPI(Streamed(message(VALID_OUTPUT), chunk=12, delay=0.04))
    worker = asyncio.create_task(run_jobs(ai_settings, extra_ctx={"assessor": slow.assessor()}))
    live = sam.page.locator("#part-assessment [data-live-assessment]")
    cause = live.locator('[data-live-field="likely_cause"]')
    await expect(cause).to_contain_text("corrupted OST")  # written so far, before the model is done
    grown = await live.locator('[data-live-list="next_steps"] li').count()
    assert not worker.done(), "the assessment showed only once it was finished"
    await sam.page.screenshot(path=artifact("context-assessment-streaming.png"))
    await worker
    await expect(state).to_have_attribute("data-assessment-state", "ready")
    steps = sam.page.locator("#part-assessment ol.steps li")
    await expect(steps).to_have_count(len(VALID_OUTPUT["assessment"]["next_steps"]))
    assert grown <= len(VALID_OUTPUT["assessment"]["next_steps"])
    await expect(sam.page.locator("#part-assessment .source")).to_contain_text("By claude")
    assert await sam.same_document()
    await sam.page.screenshot(path=artifact("context-assessment-streamed.png"))
