"""The process's connections, opened in one place for the API, the worker and the CLI.

Each process has one :class:`Runtime`: its engine, its Redis pool, the event bus,
the outbox relay and, in an API replica, the live-stream hub. The roles differ in
a few deliberate ways, written down here rather than in three wiring functions:

- ``api``: the engine the SQLAlchemy plugin also uses (checked on checkout:
  a request never meets a connection PostgreSQL dropped), each request's
  transactions scoped to its user's account (handoffs.db.tenancy); the relay gets its
  own small pool without pre-ping (one flusher at a time; a batch that meets a
  dropped connection stays pending for the sweep); the hub holds the replica's
  one Redis subscription.
- ``worker``: no pre-ping (a job that meets a dropped connection is retried,
  cheaper than pinging before every transaction); arq's own Redis pool, which
  arq closes; the relay re-dispatches jobs lost with a killed worker.
- ``cli``: one-shot commands; defaults everywhere.

Every Redis client is made by :mod:`handoffs.redis_clients`: plain or through Sentinel, each
one follows a failover. The worker's, the CLI's and the relay's engines are in the row-level
security's system scope: their statements span accounts (batches of outbox ids, the ladder's
sweep, seeding).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from arq.connections import ArqRedis
from litestar.datastructures import State
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from handoffs.config import Settings
from handoffs.db.encryption import use_keys
from handoffs.db.engine import create_engine, create_sessionmaker
from handoffs.db.tenancy import SYSTEM, system_engine
from handoffs.events import EventBus
from handoffs.jobs.queue import create_arq_pool
from handoffs.outbox.arq_enqueue import ArqJobQueue
from handoffs.outbox.relay import OutboxRelay
from handoffs.redis_clients import redis_client, redis_pool
from handoffs.security.revocation import RevocationCheck
from handoffs.stream.guard import StreamGuard
from handoffs.stream.hub import EventHub

Role = Literal["api", "worker", "cli"]

#: Where the API keeps its runtime on ``app.state``.
STATE_KEY = "runtime"


@dataclass
class Runtime:
    settings: Settings
    role: Role
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: ArqRedis
    bus: EventBus
    relay: OutboxRelay
    system_engine: AsyncEngine
    """``engine`` in the system scope, for the API's few cross-account reads (the outbox backlog
    of /metrics); the worker's and the CLI's ``engine`` is already."""
    hub: EventHub | None = None
    """The live-stream hub: API replicas only."""
    auth_redis: Redis | None = None
    """One connection for the signed-out-token check of every request and the live stream's
    cap and re-checks (API replicas only): serialised on it, so 200 streams opening at once
    do not grow the shared pool."""
    revocations: RevocationCheck | None = None
    """Whether a request's token was signed out, on ``auth_redis`` (API replicas only)."""
    _owned_redis: bool = True
    _engines: list[AsyncEngine] = field(default_factory=list, repr=False)

    async def close(self) -> None:
        """Stop the hub, let the relay hand on what it holds, then close the connections."""
        if self.hub is not None:
            await self.hub.stop()
        await self.relay.drain()
        if self.auth_redis is not None:
            await self.auth_redis.aclose()
        if self._owned_redis:
            await self.redis.aclose()
        for engine in self._engines:
            await engine.dispose()


async def open_runtime(
    settings: Settings, *, role: Role, engine: AsyncEngine | None = None, redis: ArqRedis | None = None
) -> Runtime:
    """Open the connections ``role`` needs. ``engine`` and ``redis``, when given, are the
    caller's (the API's plugin engine, arq's pool); the runtime disposes the engine but
    leaves a given Redis to its owner."""
    use_keys(settings.data_encryption_keys())  # the encrypted columns' keys (handoffs.db.encryption)
    engines: list[AsyncEngine] = []
    if engine is None:
        # The API's engine is the plugin's, given: its scope is each request's.
        engine = create_engine(settings, pre_ping=role != "worker", scope=None if role == "api" else SYSTEM)
    engines.append(engine)
    owned_redis = redis is None
    redis = redis if redis is not None else await create_arq_pool(settings)
    bus = EventBus(redis)
    sessionmaker = create_sessionmaker(engine)
    relay_options: dict[str, Any] = {}
    relay_sessionmaker = sessionmaker
    if role == "api":
        relay_engine = create_engine(settings, pre_ping=False, pool_size=2, max_overflow=2, scope=SYSTEM)
        engines.append(relay_engine)
        relay_sessionmaker = create_sessionmaker(relay_engine)
        relay_options["fast_path"] = settings.outbox_fast_path
    elif role == "worker":
        # A dispatched job not finished after its timeout (plus margin) was lost: re-dispatch it.
        relay_options["stale_after"] = timedelta(seconds=settings.job_timeout_seconds * 2 + 60)
    runtime = Runtime(
        settings=settings,
        role=role,
        engine=engine,
        sessionmaker=sessionmaker,
        redis=redis,
        bus=bus,
        relay=OutboxRelay(relay_sessionmaker, bus, ArqJobQueue(redis), **relay_options),
        _owned_redis=owned_redis,
        system_engine=system_engine(engine) if role == "api" else engine,
        _engines=engines,
    )
    if role == "api":
        runtime.auth_redis = redis_client(settings, Redis, single_connection=True)
        runtime.revocations = RevocationCheck(runtime.auth_redis, settings.auth_user_cache_seconds)
        runtime.hub = EventHub(
            functools.partial(redis_pool, settings),
            bus,
            queue_size=settings.sse_client_queue,
            keepalive_seconds=settings.sse_keepalive_seconds,
            gc_gen0_threshold=settings.sse_gc_gen0_threshold,
            # It re-checks every open stream's user at once, whatever their account.
            guard=StreamGuard.of(system_engine(engine), runtime.auth_redis, settings),
        )
        await runtime.hub.start()
    return runtime


def runtime_of(state: State | Any) -> Runtime:
    """The API's runtime, from ``app.state`` (or an app)."""
    state = getattr(state, "state", state)
    runtime: Runtime = state[STATE_KEY]
    return runtime
