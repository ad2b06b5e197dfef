"""Every Redis client of a process is made here: to REDIS_URL's server, or to the master that the
Sentinels of REDIS_SENTINELS name, followed when they fail over (docs/deployment.md).

Through Sentinel, each new connection asks the Sentinels where the master is (redis-py's
``SentinelConnectionPool``), and a connection that meets ``READONLY`` (a master demoted under
it) is dropped. That alone leaves connections that stay up where they are: after a failover
Sentinel turns an old master that is still running into a replica only seconds later, and
meanwhile it accepts writes that are then lost. So these pools ask the Sentinels again, at most
twice a second while connections are taken: while they report the master's failover under way,
no connection is used (commands wait, see below), and after it each connection moves to the new
master before it carries a command. The live-stream hub, which keeps one connection of its own,
asks as often (:func:`master_moved`). What the old master accepted between its replica's
promotion and the next question (half a second at most) is still lost: Redis replicates
asynchronously (docs/deployment.md says what that costs).

Every client also tries a command again, with backoff, while its connection is lost, for up to
``REDIS_RETRY_SECONDS`` in all: a restart or a failover is waited out rather than failed (an
arq worker would exit on the error). A command retried after the connection broke may have run
once already; what is sent this way is safe to repeat (jobs are enqueued by id, a duplicated
event has the same content) or a counter a retry may bump twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisError, TimeoutError

from handoffs.config import Settings

R = TypeVar("R", bound=Redis)
T = TypeVar("T")

#: How often a pool (and the hub) asks the Sentinels whether the master moved, at most.
FOLLOW_SECONDS = 0.5

#: When the outermost retrying call of this task gives up (a connect retries inside a command).
_deadline: ContextVar[float | None] = ContextVar("redis_retry_deadline", default=None)


class RetryFor(Retry):
    """redis-py's Retry, bounded by time instead of a count: backoff from 0.1 s doubling to 1 s,
    until ``seconds`` after the outermost call began.

    redis-py retries a connect inside the retry of a command; counted retries would multiply
    (10 by 10 attempts); one deadline for the pair keeps the whole wait at ``seconds``.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(ExponentialBackoff(cap=1.0, base=0.05), retries=-1)
        self.seconds = seconds

    async def call_with_retry(self, do: Callable[[], Awaitable[T]], fail: Callable[[RedisError], Any]) -> T:
        token = None
        if _deadline.get() is None:
            token = _deadline.set(time.monotonic() + self.seconds)
        try:
            failures = 0
            while True:
                try:
                    return await do()
                except self._supported_errors as error:
                    failures += 1
                    await fail(error)
                    left = (_deadline.get() or 0.0) - time.monotonic()
                    if left <= 0:
                        raise
                    await asyncio.sleep(min(left, self._backoff.compute(failures)))
        finally:
            if token is not None:
                _deadline.reset(token)


class FailoverUnderWay(MasterNotFoundError):
    """The Sentinels are failing the master over: the one they still name may be demoted any
    moment, and what it accepts meanwhile is lost. Retried like a lost connection until they
    name the new one."""


class Sentinels(Sentinel):
    """redis-py's Sentinel client, but a master being failed over is no master to write to."""

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        errors = []
        for sentinel in self.sentinels:
            try:
                masters = await sentinel.sentinel_masters()  # type: ignore[no-untyped-call]
            except (ConnectionError, TimeoutError) as exc:
                errors.append(f"{sentinel}: {exc!r}")
                continue
            state = masters.get(service_name)
            if not state:
                continue
            flags = state["flags"]
            if "failover_in_progress" in (flags if isinstance(flags, set) else str(flags).split(",")):
                raise FailoverUnderWay(f"the Sentinels are failing {service_name!r} over")
            if self.check_master_state(state, service_name):
                return str(state["ip"]), int(state["port"])
        raise MasterNotFoundError(
            f"no master found for {service_name!r}: {', '.join(errors) or 'none named'}"
        )


class FollowingSentinelPool(SentinelConnectionPool):
    """A pool of connections to the master the Sentinels name, that moves them when it moves."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self._checked = float("-inf")
        self._in_doubt = False

    async def get_master_address(self) -> tuple[str, int]:
        try:
            address: tuple[str, int] = await super().get_master_address()  # type: ignore[no-untyped-call]
        except FailoverUnderWay:
            if not self._in_doubt:
                self._in_doubt = True
                await self.disconnect(inuse_connections=False)
            raise
        self._in_doubt = False
        return address

    async def get_connection(
        self, command_name: Any = None, *keys: Any, **options: Any
    ) -> AbstractConnection:
        await self._follow()
        # Without the arguments: redis-py 5.3 deprecates them (and ignores them).
        connection: AbstractConnection = await super().get_connection()
        address = self.master_address
        if self._in_doubt or (
            address is not None and (connection.host, connection.port) != address  # type: ignore[attr-defined]
        ):
            # Busy when the master moved (or began to), so not dropped with the idle ones: now,
            # before it carries a command to a server that is no longer the master. Connecting
            # waits for the Sentinels to name the new one (the retry of the connect).
            try:
                await connection.disconnect()
                await self.ensure_connection(connection)
            except BaseException:
                await self.release(connection)
                raise
        return connection

    async def _follow(self) -> None:
        now = time.monotonic()
        if now - self._checked < FOLLOW_SECONDS:
            return
        self._checked = now
        # A changed address (or a failover begun) also drops the idle connections.
        with contextlib.suppress(ConnectionError, TimeoutError):
            await self.get_master_address()

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        if inuse_connections:
            # Closing the client, not a master change (which disconnects only the idle ones):
            # the connections to the Sentinels go too.
            for sentinel in self.sentinel_manager.sentinels:
                await sentinel.aclose()


class BlockingFollowingSentinelPool(FollowingSentinelPool, BlockingConnectionPool):
    """The same, waiting for a free connection at ``max_connections`` instead of failing."""


def redis_pool(settings: Settings, *, max_connections: int | None = None, **options: Any) -> ConnectionPool:
    """A pool of connections to the Redis master; ``max_connections`` makes it wait for a free one.

    ``options`` are redis-py connection options (``client_name``, ``socket_keepalive``, ...).
    """
    options = {
        "socket_connect_timeout": 5,
        "retry": RetryFor(settings.redis_retry_seconds),
        "retry_on_error": [ConnectionError, TimeoutError],
        **options,
    }
    if max_connections is not None:
        options.update(max_connections=max_connections, timeout=None)
    sentinels = settings.sentinel_addresses()
    if not sentinels:
        plain = BlockingConnectionPool if max_connections is not None else ConnectionPool
        return plain.from_url(settings.required_redis_url, **options)
    # REDIS_URL, if set, still says which database and credentials; the Sentinels say where.
    if settings.redis_url:
        url = parse_url(settings.redis_url)
        for key in ("db", "username", "password"):
            if url.get(key) is not None:
                options.setdefault(key, url[key])
        if settings.redis_url.startswith("rediss://"):
            options.setdefault("ssl", True)
    sentinel_options: dict[str, Any] = {"socket_connect_timeout": 2, "socket_keepalive": True}
    if settings.redis_sentinel_password:
        sentinel_options["password"] = settings.redis_sentinel_password
    manager = Sentinels(sentinels, sentinel_kwargs=sentinel_options)  # type: ignore[no-untyped-call]
    pool_class = BlockingFollowingSentinelPool if max_connections is not None else FollowingSentinelPool
    return pool_class(settings.redis_sentinel_master, manager, is_master=True, **options)


def redis_client(
    settings: Settings, redis_class: type[R], *, single_connection: bool = False, **options: Any
) -> R:
    """A client (``Redis``, or arq's ``ArqRedis``) of the Redis master, owning its pool.

    ``single_connection``: every command waits its turn on one connection, taken from the pool
    each time, so it follows a failover too.
    """
    pool = redis_pool(settings, max_connections=1 if single_connection else None, **options)
    client = redis_class(connection_pool=pool)
    client.auto_close_connection_pool = True
    return client


async def master_moved(pool: ConnectionPool, connection: AbstractConnection) -> bool:
    """Whether ``connection`` leads to a server the Sentinels no longer name as the master
    (False without Sentinel, and when they cannot be asked: a real loss shows on the line)."""
    if not isinstance(pool, SentinelConnectionPool):
        return False
    try:
        address = await pool.get_master_address()  # type: ignore[no-untyped-call]
    except FailoverUnderWay:
        return True
    except (ConnectionError, TimeoutError):
        return False
    return bool(address != (connection.host, connection.port))  # type: ignore[attr-defined]


def follows_sentinels(pool: ConnectionPool) -> bool:
    return isinstance(pool, SentinelConnectionPool)
