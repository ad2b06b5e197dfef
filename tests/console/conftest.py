"""Fixtures of the browser tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.browser import Console, Open, open_console


@pytest.fixture
async def window(chromium: Any) -> AsyncIterator[Open]:
    """Opens a signed-in browser window; every window is closed after the test."""
    opened: list[Console] = []

    async def open_window(base_url: str, email: str, **options: Any) -> Console:
        console = await open_console(chromium, base_url, email, **options)
        opened.append(console)
        return console

    yield open_window
    for console in opened:
        await console.close()
