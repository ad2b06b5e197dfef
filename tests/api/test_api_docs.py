"""The browsable API docs at /schema: served by the app itself, so they work with no internet."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import Api
from tests.support.browser import artifact


async def test_the_docs_page_loads_only_the_apps_own_assets_under_a_strict_csp(api: Api) -> None:
    page = await api.call(None, "GET", "/schema")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert "<script>" not in page.text
    assert "<style>" not in page.text
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert referenced, page.text
    assert all(url.startswith("/") and not url.startswith("//") for url in referenced), referenced
    for url in referenced:
        asset = await api.call(None, "GET", url)
        assert asset.status_code == 200, url


async def test_the_schema_the_docs_page_reads_is_served_beside_it(api: Api) -> None:
    page = await api.call(None, "GET", "/schema")
    spec_url = re.search(r'data-spec-url="([^"]+)"', page.text)
    assert spec_url is not None
    schema = await api.call(None, "GET", spec_url.group(1))
    assert schema.status_code == 200
    assert "/api/v1/ai-sessions/{session_id}/handoffs/{handoff_id}/claim" in schema.json()["paths"]


@pytest.mark.slow
async def test_the_docs_page_lists_the_operations_in_a_browser_with_no_internet(
    chromium: Any, replicas: list[str]
) -> None:
    base = replicas[0]
    context = await chromium.new_context(base_url=base)
    blocked: list[str] = []
    errors: list[str] = []

    async def only_the_app(route: Any) -> None:
        if route.request.url.startswith(base):
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort("internetdisconnected")

    await context.route("**/*", only_the_app)
    page = await context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    try:
        await page.goto("/schema")
        from playwright.async_api import expect

        claim = page.locator(
            ".opblock", has_text="/api/v1/ai-sessions/{session_id}/handoffs/{handoff_id}/claim"
        )
        await expect(claim).to_be_visible(timeout=20_000)
        assert await page.locator(".opblock").count() >= 20
        await page.screenshot(path=artifact("api-docs.png"))
    finally:
        await context.close()
    assert not blocked, f"the docs page reached outside the app: {blocked}"
    assert not errors, errors  # a CSP violation is a console error
