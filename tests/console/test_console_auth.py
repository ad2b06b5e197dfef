"""The console's cookie session: HttpOnly cookie, CSRF on unsafe methods, logout; bearer clients unaffected.

Driven over real HTTP against a replica, as a browser would (cookie jar included).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from handoffs.security.auth import CSRF_COOKIE, SESSION_COOKIE
from tests.conftest import Api


@pytest.fixture
async def browser(replicas: list[str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=replicas[0]) as client:
        yield client


async def test_session_sign_in_sets_an_httponly_cookie_and_returns_a_csrf_token(
    browser: httpx.AsyncClient,
) -> None:
    response = await browser.post("/api/v1/auth/session", json={"email": "sam@acme.test", "password": "demo"})
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["email"] == "sam@acme.test"
    assert "access_token" not in body
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith(f"{SESSION_COOKIE}="))
    csrf = next(c for c in cookies if c.startswith(f"{CSRF_COOKIE}="))
    assert "HttpOnly" in session
    assert "samesite=lax" in session.lower()
    assert "HttpOnly" not in csrf
    assert body["csrf_token"] in csrf

    # The cookie alone authenticates safe requests...
    assert (await browser.get("/api/v1/me")).json()["email"] == "sam@acme.test"
    # ...but an unsafe one needs the CSRF token echoed in a header.
    refused = await browser.post("/api/v1/notifications/read-all")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    wrong = await browser.post("/api/v1/notifications/read-all", headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403
    ok = await browser.post("/api/v1/notifications/read-all", headers={"X-CSRF-Token": body["csrf_token"]})
    assert ok.status_code == 200

    kept = browser.cookies.get(SESSION_COOKIE)  # what a copied cookie would replay
    out = await browser.post("/api/v1/auth/logout", headers={"X-CSRF-Token": body["csrf_token"]})
    assert out.status_code == 200
    assert not browser.cookies.get(SESSION_COOKIE)
    assert (await browser.get("/api/v1/me")).status_code == 401
    # Not only cleared in this browser: the server refuses that session from now on.
    replayed = await browser.get("/api/v1/me", headers={"Cookie": f"{SESSION_COOKIE}={kept}"})
    assert replayed.status_code == 401


async def test_wrong_password_sets_no_cookie(browser: httpx.AsyncClient) -> None:
    response = await browser.post("/api/v1/auth/session", json={"email": "sam@acme.test", "password": "x"})
    assert response.status_code == 401
    assert not response.headers.get_list("set-cookie")


async def test_bearer_clients_need_no_csrf_token(api: Api) -> None:
    response = await api.call("sam", "POST", "/api/v1/notifications/read-all")
    assert response.status_code == 200
