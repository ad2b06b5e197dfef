"""The console when the server ends its stream for good (``access_ended``): the page goes where
the session may still go, instead of reconnecting forever.

Real Chromium against the live-stream replicas (keepalive 0.3 s), fresh users changed in the
database as an administrator would.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.enums import Role
from tests.support.browser import open_console
from tests.support.people import change_user, new_colleague

pytestmark = pytest.mark.slow


async def expect_stream_state(page: Any, state: str) -> None:
    """Until the page's live stream is in ``state`` (``live``; ``off`` where it may not stream)."""
    from playwright.async_api import expect

    await expect(page.locator("html")).to_have_attribute("data-stream", state, timeout=20_000)


async def test_a_deactivated_users_console_goes_to_the_sign_in_page(
    chromium: Any, stream_replicas: list[str], db: AsyncSession
) -> None:
    nina = await new_colleague(db)
    console = await open_console(chromium, stream_replicas[0], nina.email)
    try:
        await console.wait_live()
        await change_user(db, nina, is_active=False)
        # The page's reload (the server's redirect) or the next API call's 401 (the console's own
        # move, next= encoded) leads there, whichever comes first once the replica's kept row of her
        # is older than AUTH_USER_CACHE_SECONDS.
        await console.page.wait_for_url(re.compile(r"/login\?next=(/|%2F)$"))
        assert console.errors == []
    finally:
        await console.close()


async def test_an_engineer_made_viewer_gets_the_viewers_console_without_a_stream(
    chromium: Any, stream_replicas: list[str], db: AsyncSession
) -> None:
    nina = await new_colleague(db)
    console = await open_console(chromium, stream_replicas[1], nina.email)
    try:
        await console.wait_live()
        await change_user(db, nina, role=Role.viewer)
        await expect_stream_state(console.page, "off")
        assert console.page.url == stream_replicas[1] + "/"
        assert console.errors == []
    finally:
        await console.close()


async def test_signing_out_in_one_tab_sends_a_tab_on_the_other_replica_to_the_sign_in_page(
    chromium: Any, stream_replicas: list[str], db: AsyncSession
) -> None:
    a, b = stream_replicas
    nina = await new_colleague(db)
    console = await open_console(chromium, a, nina.email)
    try:
        # The same browser (cookies do not depend on the port), a second tab on the other replica.
        other = await console.context.new_page()
        await other.goto(b + "/")
        await console.wait_live()
        await expect_stream_state(other, "live")

        await console.page.locator("#logout").click()
        await console.page.wait_for_url(re.compile(r"/login$"))
        await other.wait_for_url(re.compile(r"/login\?next=/$"))
        assert console.errors == []
    finally:
        await console.close()
