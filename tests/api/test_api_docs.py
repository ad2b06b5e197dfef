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


async def test_every_operation_documents_the_errors_it_answers_with_the_bodies_it_sends(api: Api) -> None:
    """Issue #14: the schema showed Litestar's `{status_code, detail, extra}` for 400s the app answers
    as `{detail, errors}`, and no 401/403/404 at all (handoffs.error_docs)."""
    schema = (await api.call(None, "GET", "/schema/openapi.json")).json()
    ref = "#/components/schemas/"
    assert set(schema["components"]["schemas"]["InvalidRequest"]["properties"]) == {"detail", "errors"}
    assert "Validation Exception" not in str(schema), "Litestar's own 400 shape is still documented"
    missing: list[str] = []

    def body(responses: dict[str, Any], status: str) -> str:
        return str(responses[status]["content"]["application/json"]["schema"].get("$ref", ""))

    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            here = f"{method.upper()} {path}"

            expected = set()
            if operation.get("parameters") or operation.get("requestBody"):
                expected.add("400")
            if path.startswith("/api/v1") and path not in {"/api/v1/auth/login", "/api/v1/auth/session"}:
                expected.add("401")
            if "{" in path:
                expected.add("404")
            if method != "get":
                expected.add("403")  # a role below the operation's, or a console session without CSRF
            missing += [f"{here}: {status}" for status in sorted(expected - set(responses))]
            if "400" in responses and body(responses, "400") != ref + "InvalidRequest":
                missing.append(f"{here}: 400 is {body(responses, '400')}")
            missing += [
                f"{here}: {status} is {body(responses, status)}"
                for status in ("401", "403", "404")
                if status in responses and body(responses, status) != ref + "Detail"
            ]
    assert not missing, "\n".join(missing)
    queue = schema["paths"]["/api/v1/ai-sessions/queue"]["get"]["responses"]
    assert "below engineer" in queue["403"]["description"]
    claim = schema["paths"]["/api/v1/ai-sessions/{session_id}/handoffs/{handoff_id}/claim"]["post"]
    assert claim["responses"]["409"]["content"]["application/json"]["schema"] == {
        "$ref": ref + "ClaimConflict"
    }
    login = schema["paths"]["/api/v1/auth/login"]["post"]["responses"]
    assert {"400", "401", "429"} <= set(login)
