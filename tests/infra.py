"""Real PostgreSQL and Redis for the test run: embedded by default, or the ones the environment names.

Each pytest-xdist worker gets its own database (migrated from scratch) and its
own Redis (an embedded server, or a numbered database of the given one), so
workers never see each other's rows or keys.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from handoffs.embedded import EmbeddedPostgres, EmbeddedRedis

ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = ROOT / ".data" / "test"


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def recreate_database(admin_url: str, name: str) -> None:
    """Create this worker's database, and drop ones left by test runs that died.

    Names carry the pid, so concurrent runs on one server never touch each
    other's databases.
    """
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        for row in await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'handoffs_test_%'"):
            pid = row["datname"].rsplit("_", 1)[-1]
            if pid.isdigit() and not _pid_alive(int(pid)):
                await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@dataclass
class TestServices:
    admin_url: str
    database_name: str
    redis_url: str
    postgres: EmbeddedPostgres | None
    redis: EmbeddedRedis | None

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
    name = f"handoffs_test_{worker_id()}_{os.getpid()}"
    asyncio.run(recreate_database(admin_url, name))

    redis_url = os.environ.get("REDIS_URL") or None
    if redis_url is None:
        redis = EmbeddedRedis(TEST_DATA / f"redis-{worker_id()}-{os.getpid()}")
        redis_url = redis.start()
    else:
        # A numbered database per worker; pub/sub channels carry random
        # account ids, so they cannot collide either.
        parts = urlsplit(redis_url)
        redis_url = urlunsplit((parts.scheme, parts.netloc, f"/{1 + worker_number() % 15}", "", ""))
    return TestServices(admin_url, name, redis_url, postgres, redis)
