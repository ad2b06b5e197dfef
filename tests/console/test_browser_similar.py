"""Similar past escalations in the console: on the handoff screen ("Ada fixed a similar one on 3 Nov")
and first in the escalate form's "Send to". Over plain HTTP, and once in Chromium."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest

from tests.api.test_similar import OUTLOOK, OUTLOOK_FIX, escalate, fixed
from tests.conftest import Actor, Api
from tests.support.browser import artifact, open_console


def section(body: str) -> str:
    match = re.search(r'<section class="panel" id="similar".*?</section>', body, re.S)
    assert match, "the handoff screen has its similar section"
    return match.group(0)


def flat(fragment: str) -> str:
    """The fragment's text as a person reads it."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


async def test_the_handoff_screen_says_who_fixed_a_similar_one_when_and_links_to_it(api: Api) -> None:
    match = await fixed(api, "Outlook is failing to sync the shared mailbox", OUTLOOK_FIX + " " + "x" * 300)
    session, handoff = await escalate(api, OUTLOOK)
    page = await api.call("sam", "GET", f"/sessions/{session['id']}/handoffs/{handoff['id']}")
    assert page.status_code == 200
    part = section(page.text)
    text = flat(part)
    assert "Similar past escalations" in text
    assert re.search(r"Ada fixed a similar one on \d{1,2} \w{3}: Cleared the stale OST", text), text
    assert "x" * 300 not in text
    assert "…" in text
    assert f'href="/sessions/{match["session_id"]}/handoffs/{match["id"]}"' in part
    assert f'<time datetime="{match["resolved_at"]}" data-day>' in part  # time.js writes the local day


async def test_the_handoff_screen_says_when_nothing_similar_was_resolved_yet(api: Api) -> None:
    await fixed(api, "Printer jams", "Replaced the fuser")
    session, handoff = await escalate(api, OUTLOOK)
    page = await api.call("victor", "GET", f"/sessions/{session['id']}/handoffs/{handoff['id']}")
    assert page.status_code == 200  # viewers read it too
    assert "No similar resolved escalations yet." in flat(section(page.text))


async def test_what_people_wrote_in_a_similar_one_is_escaped(api: Api) -> None:
    await fixed(api, OUTLOOK + ' <img src=x onerror="alert(1)">', "<script>alert('fix')</script> Outlook")
    session, handoff = await escalate(api, OUTLOOK)
    page = await api.call("sam", "GET", f"/sessions/{session['id']}/handoffs/{handoff['id']}")
    part = section(page.text)
    assert "<script>" not in part
    assert "<img" not in part
    assert "&lt;script&gt;" in part


async def test_the_escalate_form_offers_who_fixed_similar_ones_first(api: Api) -> None:
    await fixed(api, OUTLOOK, OUTLOOK_FIX, by="ada")
    await fixed(api, OUTLOOK + " again", "New profile", by="ada")
    await fixed(api, OUTLOOK + " for finance", "Repaired Office", by="sam")
    session = await api.new_session("jane", title="Outlook", problem_summary=OUTLOOK)
    page = await api.call("jane", "GET", f"/sessions/{session['id']}")
    assert page.status_code == 200
    select = re.search(r'<select id="ho-target".*?</select>', page.text, re.S)
    assert select, page.text
    groups = re.findall(r'<optgroup label="([^"]+)">(.*?)</optgroup>', select.group(0), re.S)
    assert [label for label, _ in groups] == ["Fixed similar ones", "Everyone else"]
    assert re.findall(r">([^<]+)</option>", groups[0][1]) == [
        "Ada Admin (admin) · resolved 2 similar",
        "Sam Senior (engineer) · resolved 1 similar",
    ]
    others = re.findall(r">([^<]+)</option>", groups[1][1])
    assert others == ["Olivia Owner (owner)"]  # never Jane herself, nor the viewer
    assert "Ada resolved 2 similar escalations." in flat(page.text)
    assert 'aria-describedby="ho-target-hint"' in select.group(0)


async def test_the_escalate_form_is_as_before_when_nobody_fixed_a_similar_one(api: Api) -> None:
    await fixed(api, "Printer jams", "Replaced the fuser")
    session = await api.new_session("jane", title="Outlook", problem_summary=OUTLOOK)
    page = await api.call("jane", "GET", f"/sessions/{session['id']}")
    select = re.search(r'<select id="ho-target".*?</select>', page.text, re.S)
    assert select
    assert "<optgroup" not in select.group(0)
    assert "ho-target-hint" not in page.text
    assert "Sam Senior (engineer)" in select.group(0)


@pytest.mark.slow
@pytest.mark.usefixtures("clean_redis")
async def test_a_senior_sees_who_fixed_a_similar_one_in_the_browser(
    chromium: Any, replicas: list[str], actors: dict[str, Actor]
) -> None:
    from playwright.async_api import expect

    base = replicas[0]
    async with httpx.AsyncClient(base_url=base) as http:
        api = Api(http, actors)  # type: ignore[arg-type]  # the same requests, over the network
        match = await fixed(api, "Outlook is failing to sync the shared mailbox", OUTLOOK_FIX)
        session, handoff = await escalate(api, OUTLOOK, notes="Rebuilt the profile")
        fresh = await api.new_session("jane", title="Outlook for finance", problem_summary=OUTLOOK)
    jane = await open_console(chromium, base, "jane@acme.test", path=f"/sessions/{fresh['id']}")
    try:
        picker = jane.page.get_by_label("Send to")
        await expect(picker.locator('optgroup[label="Fixed similar ones"] option')).to_have_text(
            ["Ada Admin (admin) · resolved 1 similar"]
        )
        await expect(jane.page.locator("#ho-target-hint")).to_have_text("Ada resolved 1 similar escalation.")
        await jane.page.locator("#handoff-form").screenshot(path=artifact("similar-escalate-form.png"))
        assert not jane.errors, jane.errors
    finally:
        await jane.close()
    sam = await open_console(
        chromium, base, "sam@acme.test", path=f"/sessions/{session['id']}/handoffs/{handoff['id']}"
    )
    try:
        similar = sam.page.locator("#similar")
        await expect(similar).to_contain_text("Ada fixed a similar one on")
        await expect(similar).to_contain_text("Cleared the stale OST file")
        # The day is the browser's own, written by time.js (the page's zone and locale).
        day = similar.locator("time[data-day]")
        await expect(day).to_have_attribute("data-day", "local")
        assert await day.get_attribute("title")
        link = similar.get_by_role("link", name="Outlook is failing to sync the shared mailbox")
        assert await link.get_attribute("href") == f"/sessions/{match['session_id']}/handoffs/{match['id']}"
        await similar.scroll_into_view_if_needed()
        await sam.page.screenshot(path=artifact("similar-escalations.png"), full_page=True)
        await link.click()
        await sam.page.wait_for_url(re.compile(f"/handoffs/{match['id']}$"))
        assert not sam.errors, sam.errors
    finally:
        await sam.close()
