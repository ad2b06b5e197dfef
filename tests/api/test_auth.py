"""Sign-in, the current user and what a missing or bad token gets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from handoffs.config import Settings
from tests.conftest import Api


async def test_login_returns_a_bearer_token_and_the_user(api: Api) -> None:
    response = await api.call(
        None, "POST", "/api/v1/auth/login", json={"email": "jane@acme.test", "password": "demo"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["access_token"]
    assert body["user"]["email"] == "jane@acme.test"
    assert body["user"]["role"] == "engineer"


async def test_login_ignores_email_case_and_spaces(api: Api) -> None:
    response = await api.call(
        None, "POST", "/api/v1/auth/login", json={"email": " Jane@ACME.test ", "password": "demo"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("email", "password"),
    [("jane@acme.test", "wrong"), ("nobody@acme.test", "demo")],
)
async def test_wrong_credentials_get_401(api: Api, email: str, password: str) -> None:
    response = await api.call(None, "POST", "/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 401
    assert response.json()["detail"] == "Wrong email or password"


async def test_me_describes_the_signed_in_user(api: Api) -> None:
    response = await api.call("ada", "GET", "/api/v1/me")
    assert response.status_code == 200
    me = response.json()
    assert set(me) >= {"id", "email", "name", "role", "account_id", "team_id"}
    assert (me["email"], me["name"], me["role"]) == ("ada@acme.test", "Ada Admin", "admin")
    assert me["team_id"] is not None


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-jwt", "Basic amFuZTpkZW1v", "Bearer "],
)
async def test_missing_or_bad_token_gets_401_with_detail(api: Api, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await api.call(None, "GET", "/api/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"]


async def test_an_expired_token_gets_401_though_the_same_claims_unexpired_get_200(
    api: Api, settings: Settings
) -> None:
    # Sam's own login token, re-signed with the real key: only ``exp`` differs between the two.
    claims = jwt.decode(api["sam"].token, options={"verify_signature": False})
    now = datetime.now(UTC)

    def signed(exp: datetime) -> dict[str, str]:
        token = jwt.encode({**claims, "exp": exp}, settings.secret_key, algorithm="HS256")
        return {"Authorization": f"Bearer {token}"}

    fresh = await api.call(None, "GET", "/api/v1/me", headers=signed(now + timedelta(minutes=5)))
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["email"] == "sam@acme.test"
    expired = await api.call(None, "GET", "/api/v1/me", headers=signed(now - timedelta(minutes=1)))
    assert expired.status_code == 401
    assert expired.json()["detail"]


async def test_token_of_a_deactivated_user_stops_working(api: Api, db) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    from handoffs.db.models import User

    await db.execute(update(User).where(User.email == "sam@acme.test").values(is_active=False))
    await db.commit()
    try:
        response = await api.call("sam", "GET", "/api/v1/me")
        assert response.status_code == 401
    finally:
        await db.execute(update(User).where(User.email == "sam@acme.test").values(is_active=True))
        await db.commit()


async def test_health_and_readiness(api: Api) -> None:
    live = await api.call(None, "GET", "/health")
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}  # what liveness checks, and no nulls that read as "down"
    ready = await api.call(None, "GET", "/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "postgres": "ok", "redis": "ok", "live_stream": "ok"}


async def test_openapi_schema_is_served(api: Api) -> None:
    response = await api.call(None, "GET", "/schema/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/ai-sessions/{session_id}/handoffs/{handoff_id}/claim" in paths


def test_logout_revokes_that_token_on_every_replica_and_only_that_one(replicas: list[str]) -> None:
    """Issue #14: logout did not revoke the bearer token (valid for 12 h after)."""
    import httpx

    a, b = replicas

    def token(url: str) -> str:
        response = httpx.post(f"{url}/api/v1/auth/login", json={"email": "sam@acme.test", "password": "demo"})
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    laptop, script = token(a), token(b)

    def me(url: str, bearer: str) -> int:
        return httpx.get(f"{url}/api/v1/me", headers={"Authorization": f"Bearer {bearer}"}).status_code

    assert (me(a, laptop), me(b, laptop), me(a, script)) == (200, 200, 200)
    out = httpx.post(f"{a}/api/v1/auth/logout", headers={"Authorization": f"Bearer {laptop}"})
    assert out.status_code == 200, out.text
    assert (me(a, laptop), me(b, laptop)) == (401, 401)  # refused everywhere at once
    assert (me(a, script), me(b, script)) == (200, 200)  # the user's other token is still good
    again = httpx.post(f"{b}/api/v1/auth/logout", headers={"Authorization": f"Bearer {laptop}"})
    assert again.status_code == 401
