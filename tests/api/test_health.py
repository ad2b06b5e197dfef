"""Readiness tells the truth when a dependency goes away: 503 naming it, 200 once it is back."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from handoffs.app import create_app
from handoffs.config import Settings
from handoffs.db.engine import migrate
from handoffs.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.conftest import Api
from tests.support.polling import wait_for, wait_lock_waiter
from tests.support.replicas import run_replica_processes, run_replicas

pytestmark = pytest.mark.slow


async def ready_until(client: AsyncTestClient[Any], status: int) -> dict[str, Any]:
    """The readiness answer once it has the expected status (pools reconnect on their own time)."""

    async def answer() -> dict[str, Any] | None:
        response = await client.get("/health/ready")
        body: dict[str, Any] = response.json()
        return body if response.status_code == status else None

    result: dict[str, Any] = await wait_for(answer, seconds=10, interval=0.05)
    return result


async def test_readiness_answers_503_naming_what_is_down_and_200_once_it_is_back(
    settings: Settings, tmp_path: Path
) -> None:
    postgres, redis = EmbeddedPostgres(tmp_path / "postgres"), EmbeddedRedis(tmp_path / "redis")
    app_settings = replace(settings, database_url=postgres.start(), redis_url=redis.start())
    try:
        # Migrated: the readiness check's transaction switches to the app role (migration 0009)
        # as every transaction does; a database without it is not one a replica can serve.
        await asyncio.to_thread(migrate, app_settings)
        async with AsyncTestClient(app=create_app(app_settings)) as client:
            assert await ready_until(client, 200) == {
                "status": "ok", "postgres": "ok", "redis": "ok", "live_stream": "ok",
            }  # fmt: skip

            await asyncio.to_thread(redis.stop)
            down = await ready_until(client, 503)
            assert down["status"] == "unavailable"
            assert down["postgres"] == "ok"
            assert down["redis"].startswith("down: ")

            await asyncio.to_thread(postgres.stop)
            both = await ready_until(client, 503)
            assert both["postgres"].startswith("down: ")
            assert both["redis"].startswith("down: ")

            await asyncio.to_thread(postgres.start)
            await asyncio.to_thread(redis.start)
            back = await ready_until(client, 200)
            assert back["postgres"] == "ok"
            assert back["redis"] == "ok"
    finally:
        redis.stop()
        postgres.stop()


async def test_requests_after_postgresql_closed_every_pooled_connection_still_answer(
    settings: Settings, api: Api, engine: AsyncEngine
) -> None:
    """The server ending the replica's connections (a restart, a failover, an idle timeout) costs
    no request: each pooled connection it closed is replaced at checkout (handoffs.db.engine)."""
    name = "handoffs-closed-pool-test"
    with run_replica_processes(settings, 1, DB_APPLICATION_NAME=name) as (replica,):
        async with httpx.AsyncClient(base_url=replica.url, headers=api["sam"].headers) as http:
            # Fill the pool with several connections: requests at once.
            first = await asyncio.gather(*(http.get("/api/v1/ai-sessions/queue") for _ in range(8)))
            assert {r.status_code for r in first} == {200}
            async with engine.connect() as conn:
                ended = await conn.scalar(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE application_name = :name AND datname = current_database()"
                    ),
                    {"name": name},
                )
            assert ended is not None
            assert ended >= 2, ended
            after = await asyncio.gather(*(http.get("/api/v1/ai-sessions/queue") for _ in range(8)))
            assert [r.status_code for r in after] == [200] * 8, [r.text[:200] for r in after]


async def test_a_request_that_finds_no_free_database_connection_answers_503_with_retry_after(
    api: Api, settings: Settings, engine: AsyncEngine
) -> None:
    """A replica with one pooled connection and no overflow (DB_MAX_OVERFLOW=0, the default's
    shape): while a claim holds it (blocked on a row the test locked), another request waits
    DB_POOL_TIMEOUT for a connection and is told to try again, and the claim then completes."""
    session, handoff = await api.escalated("jane")
    headers = api.actors["sam"].headers
    with run_replicas(settings, 1, DB_POOL_SIZE="1", DB_MAX_OVERFLOW="0", DB_POOL_TIMEOUT="0.5") as (url,):
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
            assert (await http.get("/api/v1/me")).status_code == 200  # sam's row is kept from here
            async with engine.begin() as conn:
                await conn.execute(
                    text("SELECT 1 FROM session_handoffs WHERE id = :id FOR UPDATE"), {"id": handoff["id"]}
                )
                claim = asyncio.create_task(
                    http.post(f"/api/v1/ai-sessions/{session['id']}/handoffs/{handoff['id']}/claim")
                )
                await wait_lock_waiter(engine)  # the claim, holding the replica's one connection
                busy = await http.get("/api/v1/notifications/unread-count")
                assert busy.status_code == 503, busy.text
                assert busy.headers["retry-after"] == "1"
                assert busy.json() == {"detail": "The service is busy; try again in a moment."}
                assert not claim.done()
            assert (await claim).status_code == 200
            assert (await http.get("/api/v1/notifications/unread-count")).status_code == 200
