"""Sign-in, the current user and what a missing or bad token gets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.config import Settings
from tests.conftest import AUTH_USER_CACHE_BOUND, AUTH_USER_CACHE_SECONDS, Api
from tests.support.people import Person, change_user, new_colleague
from tests.support.polling import eventually


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
        # Within the time a process keeps a user's row (AUTH_USER_CACHE_SECONDS), on every request.
        await eventually(
            lambda: status_of(api, "sam", "GET", "/api/v1/me"), 401, within=AUTH_USER_CACHE_BOUND
        )
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


async def test_logout_revokes_that_token_here_at_once_on_every_replica_within_the_bound_and_only_that_one(
    replicas: list[str],
) -> None:
    """Issue #14: logout did not revoke the bearer token (valid for 12 h after). The replica
    that signs a token out refuses it at once; another asks Redis about a token it has seen at
    most once per AUTH_USER_CACHE_SECONDS (handoffs.security.revocation), so it refuses it
    within that."""
    import time

    import httpx

    a, b = replicas
    async with httpx.AsyncClient() as http:

        async def token(url: str) -> str:
            response = await http.post(
                f"{url}/api/v1/auth/login", json={"email": "sam@acme.test", "password": "demo"}
            )
            assert response.status_code == 200, response.text
            return str(response.json()["access_token"])

        laptop, script = await token(a), await token(b)

        async def me(url: str, bearer: str) -> int:
            response = await http.get(f"{url}/api/v1/me", headers={"Authorization": f"Bearer {bearer}"})
            return response.status_code

        # b has now checked the laptop's token: the answer it keeps says "not signed out".
        assert (await me(a, laptop), await me(b, laptop), await me(a, script)) == (200, 200, 200)
        out = await http.post(f"{a}/api/v1/auth/logout", headers={"Authorization": f"Bearer {laptop}"})
        assert out.status_code == 200, out.text
        signed_out = time.monotonic()
        assert await me(a, laptop) == 401  # here at once
        await eventually(lambda: me(b, laptop), 401, within=AUTH_USER_CACHE_BOUND)
        assert time.monotonic() - signed_out < AUTH_USER_CACHE_BOUND
        # The user's other token is still good.
        assert (await me(a, script), await me(b, script)) == (200, 200)
        again = await http.post(f"{b}/api/v1/auth/logout", headers={"Authorization": f"Bearer {laptop}"})
        assert again.status_code == 401


async def test_a_token_denied_in_redis_is_refused_after_the_kept_answer_runs_out(
    redis: Any, settings: Settings
) -> None:
    """The check itself: a kept "not signed out" holds for its seconds only, then Redis decides;
    a denied token is refused from then on without asking again."""
    from litestar.security.jwt import Token

    from handoffs.security.revocation import PREFIX, RevocationCheck

    check = RevocationCheck(redis, seconds=0.2)
    token = Token(sub="someone", exp=datetime.now(UTC) + timedelta(minutes=5), jti="kept-answer-test")
    assert not await check.revoked(token)
    await redis.set(f"{PREFIX}kept-answer-test", 1, ex=60)
    assert not await check.revoked(token)  # the kept answer, not yet asked again
    await asyncio.sleep(0.25)
    assert await check.revoked(token)
    await redis.delete(f"{PREFIX}kept-answer-test")
    assert await check.revoked(token)  # refused here until it expires, without asking
    assert not await RevocationCheck(redis, seconds=0).revoked(token)  # 0: Redis on every request


async def signed_in_colleague(api: Api, db: AsyncSession) -> tuple[Person, dict[str, str]]:
    """A new colleague and their bearer header, from the real login."""
    person = await new_colleague(db)
    login = await api.call(
        None, "POST", "/api/v1/auth/login", json={"email": person.email, "password": "demo"}
    )
    return person, {"Authorization": f"Bearer {login.json()['access_token']}"}


async def status_of(api: Api, who: Any, method: str, path: str, **kwargs: Any) -> int:
    return int((await api.call(who, method, path, **kwargs)).status_code)


async def test_a_role_changed_in_the_database_applies_within_the_time_a_users_row_is_kept(
    api: Api, db: AsyncSession
) -> None:
    person, headers = await signed_in_colleague(api, db)
    body = {"title": "Printer", "problem_summary": "The printer is offline"}

    async def create() -> int:
        return (await api.client.post("/api/v1/ai-sessions", json=body, headers=headers)).status_code

    assert await create() == 201
    await change_user(db, person, role="viewer")
    await eventually(create, 403, within=AUTH_USER_CACHE_BOUND)
    assert (await api.client.get("/api/v1/me", headers=headers)).json()["role"] == "viewer"


async def test_a_users_row_is_read_once_per_keeping_time_not_on_every_request(
    api: Api, db: AsyncSession
) -> None:
    from handoffs.runtime import runtime_of

    _, headers = await signed_in_colleague(api, db)
    reads: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM users" in statement:
            reads.append(statement)

    engine = runtime_of(api.client.app).engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        for _ in range(3):
            assert (await api.client.get("/api/v1/me", headers=headers)).status_code == 200
        assert len(reads) == 1, reads  # the first request read it; the next two were served from it
        await asyncio.sleep(AUTH_USER_CACHE_SECONDS + 0.1)
        assert (await api.client.get("/api/v1/me", headers=headers)).status_code == 200
        assert len(reads) == 2, reads
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_a_kept_token_is_refused_once_it_expires_and_an_altered_copy_never_passes(
    api: Api, settings: Settings
) -> None:
    from litestar.security.jwt import Token

    sam = api["sam"]
    token = Token(sub=str(sam.id), exp=datetime.now(UTC) + timedelta(seconds=2), jti="kept-expiring")
    encoded = token.encode(secret=settings.secret_key, algorithm="HS256")
    headers = {"Authorization": f"Bearer {encoded}"}
    assert (await api.client.get("/api/v1/me", headers=headers)).status_code == 200
    assert (await api.client.get("/api/v1/me", headers=headers)).status_code == 200  # kept now
    head, payload, signature = encoded.split(".")
    altered = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    response = await api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {altered}"})
    assert response.status_code == 401
    await eventually(lambda: status_of(api, None, "GET", "/api/v1/me", headers=headers), 401, within=10)
