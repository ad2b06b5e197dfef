"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


class Health(msgspec.Struct):
    status: str
    postgres: str | None = None
    redis: str | None = None
    live_stream: str | None = None


async def _check(probe: Any) -> str:
    try:
        await asyncio.wait_for(probe, timeout=2)
    except Exception as exc:
        return f"down: {type(exc).__name__}"
    return "ok"


class HealthController(Controller):
    path = "/health"
    tags = ["health"]
    security = []

    @get("/", exclude_from_auth=True)
    async def live(self) -> Health:
        """200 while the process serves requests."""
        return Health(status="ok")

    @get("/ready", exclude_from_auth=True)
    async def ready(self, state: State) -> Response[Health]:
        """200 only when PostgreSQL and Redis both answer."""
        engine: AsyncEngine = state.engine

        async def ping_db() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        pg, rd = await asyncio.gather(_check(ping_db()), _check(state.redis.ping()))
        # The replica's one subscription; while it reconnects, live clients wait.
        hub = state.get("hub")
        stream = "ok" if hub is None or hub.connected.is_set() else "reconnecting"
        ok = pg == "ok" and rd == "ok"
        return Response(
            Health(status="ok" if ok else "unavailable", postgres=pg, redis=rd, live_stream=stream),
            status_code=200 if ok else 503,
        )
