"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from sqlalchemy import text

from handoffs.runtime import runtime_of


class Liveness(msgspec.Struct):
    """The process answers; nothing else is checked (that is ``/health/ready``)."""

    status: str


class Readiness(msgspec.Struct):
    """What readiness checked, each ``ok`` or ``down: <why>``; the live stream may be ``reconnecting``."""

    status: str
    postgres: str
    redis: str
    live_stream: str


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

    @get("/", exclude_from_auth=True, summary="Liveness")
    async def live(self) -> Liveness:
        """Liveness: 200 ``{"status": "ok"}`` while the process serves requests; checks nothing else."""
        return Liveness(status="ok")

    @get(
        "/ready",
        exclude_from_auth=True,
        summary="Readiness",
        responses={
            503: ResponseSpec(
                data_container=Readiness, generate_examples=False, description="PostgreSQL or Redis is down"
            )
        },
    )
    async def ready(self, state: State) -> Response[Readiness]:
        """Readiness: 200 when PostgreSQL and Redis both answer, else 503 naming what is down."""
        runtime = runtime_of(state)

        async def ping_db() -> None:
            async with runtime.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        pg, rd = await asyncio.gather(_check(ping_db()), _check(runtime.redis.ping()))
        # The replica's one subscription; while it reconnects, live clients wait.
        hub = runtime.hub
        stream = "ok" if hub is None or hub.connected.is_set() else "reconnecting"
        ok = pg == "ok" and rd == "ok"
        return Response(
            Readiness(status="ok" if ok else "unavailable", postgres=pg, redis=rd, live_stream=stream),
            status_code=200 if ok else 503,
        )
