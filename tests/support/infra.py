"""Real PostgreSQL and Redis for the test run: embedded by default, or the ones the environment names.

Each pytest-xdist worker gets its own database (migrated from scratch) and its
own Redis (an embedded server, or a numbered database of the given one), so
workers never see each other's rows or keys. ``DATABASE_URL`` may lead to PgBouncer in
transaction mode (with ``DB_PGBOUNCER=1``): databases are created and dropped through it too.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil

from handoffs.config import Settings
from handoffs.embedded import EmbeddedPostgres, EmbeddedRedis

ROOT = Path(__file__).resolve().parents[2]
TEST_DATA = ROOT / ".data" / "test"


#: Redis databases 1..15 of a shared server, one per test worker.
REDIS_DATABASES = 15


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "gw0")


def worker_number() -> int:
    digits = "".join(ch for ch in worker_id() if ch.isdigit())
    return int(digits or 0)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def asyncpg_dsn(url: str) -> str:
    """asyncpg takes libpq URLs, unix-socket ``?host=`` form included; drop a driver suffix."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))


#: A test run lasts minutes; a test database older than this was left by a run that died.
STALE_AFTER_SECONDS = 24 * 3600
#: When this worker started (unix seconds), in its database's name.
RUN_STARTED = int(time.time())


def database_name() -> str:
    """``handoffs_test_<started>_<run>_<worker>``: when the run started (unix seconds), which run
    (pytest-xdist's id, shared by its workers), which worker. A shared server may hold other
    machines' runs, whose pids mean nothing here: only the start time says a database is stale."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"solo{os.getpid()}"
    return f"handoffs_test_{RUN_STARTED}_{run[:12]}_{worker_id()}"


def _stale(name: str) -> bool:
    parts = name.split("_")
    if parts[2].isdigit():
        return int(parts[2]) < time.time() - STALE_AFTER_SECONDS
    # The naming before run ids, handoffs_test_<worker>_<pid>: this machine's, if the pid is dead.
    pid = parts[-1]
    return pid.isdigit() and not psutil.pid_exists(int(pid))


async def admin_connect(admin_url: str) -> asyncpg.Connection:
    """A plain asyncpg connection to ``admin_url``, PostgreSQL's or PgBouncer's.

    No statement cache: through PgBouncer a cached (named) statement stays behind on the
    server connection for the next client (handoffs.db.engine.connect_args). CREATE and DROP
    DATABASE run outside a transaction, one statement each, so transaction pooling passes them.
    """
    return await asyncpg.connect(asyncpg_dsn(admin_url), statement_cache_size=0)


async def recreate_database(admin_url: str, name: str) -> None:
    """Create this worker's database, and drop ones that test runs left more than a day ago."""
    conn = await admin_connect(admin_url)
    try:
        for row in await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'handoffs_test_%'"):
            if _stale(row["datname"]):
                await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(admin_url: str, name: str) -> None:
    conn = await admin_connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@dataclass
class TestServices:
    __test__ = False  # not a test class, though pytest would collect it by its name
    admin_url: str
    database_name: str
    redis_url: str
    postgres: EmbeddedPostgres | None
    redis: EmbeddedRedis | None
    pgbouncer: bool = False
    """``admin_url`` leads to PgBouncer in transaction mode (``DB_PGBOUNCER``)."""

    @property
    def database_url(self) -> str:
        return with_database(self.admin_url, self.database_name)

    def stop(self) -> None:
        asyncio.run(drop_database(self.admin_url, self.database_name))
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()


def start_test_services() -> TestServices:
    postgres = redis = None
    admin_url = os.environ.get("DATABASE_URL") or None
    if admin_url is None:
        postgres = EmbeddedPostgres(TEST_DATA / "postgres")
        admin_url = postgres.start()
    name = database_name()
    asyncio.run(recreate_database(admin_url, name))

    redis_url = os.environ.get("REDIS_URL") or None
    if redis_url is None:
        redis = EmbeddedRedis(TEST_DATA / f"redis-{worker_id()}-{os.getpid()}")
        redis_url = redis.start()
    else:
        redis_url = worker_redis_url(redis_url)
    # Read as the service reads it; without DATABASE_URL it would lead to the embedded server.
    pgbouncer = postgres is None and Settings.from_env().db_pgbouncer
    return TestServices(admin_url, name, redis_url, postgres, redis, pgbouncer)


def worker_redis_url(shared_url: str) -> str:
    """This worker's numbered database of a shared Redis (0 is left to the machine).

    Pub/sub channels carry random account ids, so they cannot collide. Sixteen databases,
    fifteen workers: a sixteenth would share (and flush) a neighbour's queue, so it refuses.
    """
    if worker_number() >= REDIS_DATABASES:
        raise RuntimeError(
            f"with REDIS_URL set, at most {REDIS_DATABASES} test workers (one Redis database each); "
            f"this is worker {worker_id()}: run with -n {REDIS_DATABASES} or fewer"
        )
    parts = urlsplit(shared_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{1 + worker_number()}", "", ""))
