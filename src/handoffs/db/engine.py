"""Database engine, sessions and migrations."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from handoffs.config import Settings
from handoffs.db import tenancy

MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "migrations"

#: The type of a list of ids bound as one array (``id = ANY(:ids)``): the statement text stays
#: the same whatever the list's length, so it stays prepared, unlike ``IN (…)`` expanded per call.
UUID_ARRAY = ARRAY(PG_UUID(as_uuid=True))


def create_engine(
    settings: Settings,
    *,
    pre_ping: bool = True,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    scope: tenancy.Scope | None = None,
    app_role: bool = True,
) -> AsyncEngine:
    """The process's engine.

    ``pre_ping``: on checkout, a connection the server closed (a restart, a failover,
    ``pg_terminate_backend``, PgBouncer's idle timeout) is swapped for a new one, so an API
    request never meets it. asyncpg reads its socket all the time and knows at once when the
    server hung up, so the check is local (``is_closed()``), not SQLAlchemy's ``pool_pre_ping``,
    which costs three round trips with asyncpg (``BEGIN``, ``;``, ``ROLLBACK``) before every
    request's own (bench/README.md, "reads"). A connection whose network path died without a
    close is not caught by either until a timeout. Workers turn it off: a job that meets a
    dropped connection fails like any unforeseen error and is retried.

    ``hide_parameters``: a failed statement's error (and so every log line and traceback
    of it) never carries its bound values: credentials, emails, notes and transcripts.

    Every transaction runs as ``DB_APP_ROLE`` in a row-level security scope (handoffs.db.tenancy):
    ``scope`` fixes it for the engine (the worker's, the CLI's, the relay's: ``SYSTEM``), else
    each task says (the API: the signed-in user's account). ``app_role=False`` keeps the login
    role (the tests' harness, which truncates and seeds as the owner).
    """
    engine = create_async_engine(
        settings.sqlalchemy_url,
        connect_args=connect_args(settings),
        hide_parameters=True,
        pool_size=settings.db_pool_size if pool_size is None else pool_size,
        max_overflow=settings.db_max_overflow if max_overflow is None else max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=1800,
        execution_options={} if scope is None else {tenancy.SCOPE_OPTION: scope},
    )
    if pre_ping:
        event.listen(engine.sync_engine.pool, "checkout", _refuse_closed)
    tenancy.install(engine, settings.db_app_role if app_role else "")
    return engine


def _refuse_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Pool checkout: a connection the server closed is invalidated and the pool tries a new one
    (SQLAlchemy's contract for ``DisconnectionError`` raised here, up to three times)."""
    if dbapi_connection._connection.is_closed():  # the adapter's asyncpg connection
        raise DisconnectionError("the server closed this pooled connection")


def connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg's arguments: the connections' ``application_name`` and, behind PgBouncer
    (``DB_PGBOUNCER``), no statement cache at all.

    In transaction pooling mode the next transaction may run on another server connection, one
    that other processes used before. asyncpg names its statements by a counter per process and
    keeps them there: the next process's ``__asyncpg_stmt_1__`` "already exists", or a kept one
    "does not exist" where the next transaction lands. With both caches off (SQLAlchemy's and
    asyncpg's), each statement is PostgreSQL's unnamed one and asyncpg sends its Parse again
    with its Bind: one statement, one exchange with one server connection, nothing named left
    on any. SQLAlchemy's recipe (uuid names) avoids the clash but leaves every statement on the
    server, hence its advice of NullPool and ``DISCARD``; without names the pool can stay.
    The price: PostgreSQL parses every statement on every execution.
    """
    named: dict[str, Any] = {"server_settings": {"application_name": settings.db_application_name}}
    if not settings.db_pgbouncer:
        return named
    return {**named, "statement_cache_size": 0, "prepared_statement_cache_size": 0}


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser treats % as interpolation; URLs may contain %-escapes.
    cfg.set_main_option("sqlalchemy.url", settings.sqlalchemy_url.replace("%", "%%"))
    # migrations/env.py connects with these: migrations may run through PgBouncer too.
    cfg.attributes["connect_args"] = connect_args(settings)
    return cfg


def migrate(settings: Settings, revision: str = "head") -> None:
    """Apply migrations up to ``revision``. Safe to call from sync code only."""
    command.upgrade(alembic_config(settings), revision)


async def migrate_async(settings: Settings, revision: str = "head") -> None:
    # env.py runs its own event loop, so run it in a thread.
    await asyncio.to_thread(migrate, settings, revision)
