"""The console's cookie session: HttpOnly cookie, CSRF on unsafe methods, logout; bearer clients unaffected.

Driven over real HTTP against a replica, as a browser would (cookie jar included).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from handoffs.security.cookies import CSRF_COOKIE, SESSION_COOKIE
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


async def _signed_in(browser: httpx.AsyncClient, email: str = "sam@acme.test") -> str:
    response = await browser.post("/api/v1/auth/session", json={"email": email, "password": "demo"})
    assert response.status_code == 200, response.text
    return str(response.json()["csrf_token"])


async def test_an_authorization_header_without_a_credential_does_not_skip_the_check(
    browser: httpx.AsyncClient,
) -> None:
    await _signed_in(browser)
    # The JWT middleware falls back to the cookie when the header carries nothing after a scheme:
    # such a header must not skip the CSRF check.
    for header in ("x", "Bearer"):
        forged = await browser.post("/api/v1/notifications/read-all", headers={"Authorization": header})
        assert forged.status_code == 403, header
    # A header with a credential is what authenticates: a bad one is refused, the cookie is not used.
    bad = await browser.post("/api/v1/notifications/read-all", headers={"Authorization": "Bearer not-a-jwt"})
    assert bad.status_code == 401


async def test_the_csrf_token_is_bound_to_its_session(replicas: list[str]) -> None:
    async with httpx.AsyncClient(base_url=replicas[0]) as sam, httpx.AsyncClient(base_url=replicas[0]) as ada:
        sams = await _signed_in(sam)
        adas = await _signed_in(ada, "ada@acme.test")
        assert sams != adas
        # Another session's token, or a CSRF cookie planted to match a chosen header (cookie tossing),
        # is worthless.
        assert (
            await sam.post("/api/v1/notifications/read-all", headers={"X-CSRF-Token": adas})
        ).status_code == 403
        sam.cookies.set(CSRF_COOKIE, "chosen-by-attacker")
        tossed = await sam.post(
            "/api/v1/notifications/read-all", headers={"X-CSRF-Token": "chosen-by-attacker"}
        )
        assert tossed.status_code == 403
        assert (
            await sam.post("/api/v1/notifications/read-all", headers={"X-CSRF-Token": sams})
        ).status_code == 200


async def test_cross_site_requests_are_refused_even_with_the_token(browser: httpx.AsyncClient) -> None:
    token = await _signed_in(browser)
    path = "/api/v1/notifications/read-all"
    for headers in (
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another site for us
        {"Origin": "https://evil.example"},
    ):
        refused = await browser.post(path, headers={"X-CSRF-Token": token, **headers})
        assert refused.status_code == 403, headers
        assert "another site" in refused.json()["detail"]
    own = str(browser.base_url).rstrip("/")
    for headers in ({"Sec-Fetch-Site": "same-origin"}, {"Origin": own}, {}):
        assert (await browser.post(path, headers={"X-CSRF-Token": token, **headers})).status_code == 200, (
            headers
        )


async def test_the_cookie_sign_in_refuses_other_sites_and_non_json_bodies(browser: httpx.AsyncClient) -> None:
    login = '{"email": "sam@acme.test", "password": "demo"}'
    as_text = await browser.post(
        "/api/v1/auth/session", content=login, headers={"Content-Type": "text/plain"}
    )  # what a cross-site form could send without a preflight
    assert as_text.status_code == 415
    as_form = await browser.post("/api/v1/auth/session", data={"email": "sam@acme.test", "password": "demo"})
    assert as_form.status_code == 415
    from_elsewhere = await browser.post(
        "/api/v1/auth/session", content=login,
        headers={"Content-Type": "application/json", "Origin": "https://evil.example"},
    )  # fmt: skip
    assert from_elsewhere.status_code == 403
    assert not browser.cookies.get(SESSION_COOKIE)
    assert (await browser.post("/api/v1/auth/session", content=login,
                               headers={"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"})
            ).status_code == 200  # fmt: skip
