"""Behind PgBouncer in transaction pooling mode (``DB_PGBOUNCER``): each test puts a PgBouncer of
its own in front of the suite's database (docs/deployment.md, "Behind PgBouncer").

The alias ``shared`` has one server connection for all clients, so a prepared statement one
client left behind meets the next client; ``wide`` has eight, so transactions really overlap.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from handoffs.config import Settings
from handoffs.db.engine import UUID_ARRAY, create_engine, create_sessionmaker, migrate
from handoffs.db.models import Account, SessionHandoff, User
from handoffs.db.tenancy import SYSTEM
from tests.conftest import Api, many_engineers
from tests.support.infra import TestServices, drop_database, recreate_database
from tests.support.pgbouncer import PGBOUNCER, Bouncer, run_pgbouncer
from tests.support.replicas import run_replicas

pytestmark = pytest.mark.skipif(
    PGBOUNCER is None, reason="pgbouncer is not installed (apt-get install pgbouncer; .ci/run installs it)"
)

CLAIMERS = 10
ROUNDS = 5
SCRATCH = "scratch"  # an alias for a database a test creates


@pytest.fixture
def bouncer(test_services: TestServices, settings: Settings) -> Iterator[Bouncer]:
    if settings.db_pgbouncer:
        pytest.skip("the suite itself runs through PgBouncer here; these tests need PostgreSQL behind theirs")
    name = test_services.database_name
    pools = {"shared": (name, 1), "wide": (name, 8), SCRATCH: (f"{name}_pgb", 2)}
    with run_pgbouncer(test_services.admin_url, pools) as bouncer:
        yield bouncer


def through(settings: Settings, bouncer: Bouncer, alias: str, *, pgbouncer: bool = True) -> Settings:
    return replace(settings, database_url=bouncer.url(alias), db_pgbouncer=pgbouncer)


async def test_without_the_setting_two_processes_statements_clash_on_one_server_connection(
    settings: Settings, bouncer: Bouncer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why DB_PGBOUNCER exists: asyncpg names its statements by a counter per process, and
    leaves them on the server connection, where another process's first statement meets them."""
    import asyncpg.connection

    plain = through(settings, bouncer, "shared", pgbouncer=False)
    first, second = (create_engine(plain, pre_ping=False, pool_size=1, max_overflow=0) for _ in range(2))
    try:
        monkeypatch.setattr(asyncpg.connection, "_uid", 0)  # as in a fresh process
        async with first.connect() as conn:
            assert await conn.scalar(text("SELECT 1")) == 1
        monkeypatch.setattr(asyncpg.connection, "_uid", 0)  # the second replica, say
        with pytest.raises(DBAPIError, match=r'prepared statement "__asyncpg_stmt_\w+__" already exists'):
            async with second.connect() as conn:
                await conn.scalar(text("SELECT 1"))
    finally:
        await first.dispose()
        await second.dispose()


async def test_many_clients_and_transactions_on_one_server_connection_leave_no_statement_behind(
    settings: Settings, bouncer: Bouncer, api: Api
) -> None:
    bounced = through(settings, bouncer, "shared")
    # As the worker's: the role switch and the scope, each transaction, through PgBouncer too.
    engines = [create_engine(bounced, pool_size=2, max_overflow=0, scope=SYSTEM) for _ in range(3)]
    account_id = api["jane"].account_id
    user_ids = [api[who].id for who in ("jane", "sam", "ada")]

    async def transaction(engine: AsyncEngine, n: int) -> None:
        async with create_sessionmaker(engine)() as db, db.begin():
            account = await db.scalar(select(Account).where(Account.id == account_id))
            assert account is not None
            names = await db.scalars(select(User.name).where(User.id.in_(user_ids)))
            assert len(names.all()) == 3
            doc = text("SELECT CAST(:doc AS jsonb)->>'n'")
            assert await db.scalar(doc, {"doc": f'{{"n": "{n}"}}'}) == str(n)
            listed = text("SELECT cardinality(:ids)").bindparams(bindparam("ids", type_=UUID_ARRAY))
            assert await db.scalar(listed, {"ids": user_ids}) == 3

    try:
        await asyncio.gather(*(transaction(engines[n % len(engines)], n) for n in range(300)))
        # A failed statement ends its transaction cleanly; the connection serves the next one.
        for engine in engines:
            with pytest.raises(DBAPIError, match="division by zero"):
                async with engine.begin() as conn:
                    await conn.scalar(text("SELECT 1 / (CAST(:n AS int) - 1)"), {"n": 1})
            async with engine.begin() as conn:
                assert await conn.scalar(text("SELECT CAST(:n AS int) + 1"), {"n": 1}) == 2
                # The one server connection all of them shared holds no named statement.
                assert await conn.scalar(text("SELECT count(*) FROM pg_prepared_statements")) == 0
    finally:
        for engine in engines:
            await engine.dispose()


async def test_migrations_run_through_pgbouncer(
    settings: Settings, bouncer: Bouncer, test_services: TestServices
) -> None:
    """From an empty database to the head: one transaction, but for 0003's index changes
    CONCURRENTLY, each in autocommit (one statement, one exchange with one server)."""
    database = f"{test_services.database_name}_pgb"
    await recreate_database(test_services.admin_url, database)
    try:
        bounced = through(settings, bouncer, SCRATCH)
        await asyncio.to_thread(migrate, bounced)
        engine = create_engine(bounced)
        try:
            async with engine.connect() as conn:
                assert await conn.scalar(text("SELECT count(*) FROM accounts")) == 0
                assert await conn.scalar(text("SELECT current_database()")) == database
        finally:
            await engine.dispose()
    finally:
        await drop_database(test_services.admin_url, database)


async def _claimers(db: AsyncSession, settings: Settings, api: Api) -> list[str]:
    """Tokens of ten distinct Acme engineers."""
    return [
        token for _, token in await many_engineers(db, settings, api["jane"].account_id, CLAIMERS, "Bounced")
    ]


@pytest.mark.slow
async def test_concurrent_claims_through_pgbouncer_on_two_replicas_have_exactly_one_winner(
    settings: Settings, bouncer: Bouncer, api: Api, db: AsyncSession
) -> None:
    tokens = await _claimers(db, settings, api)
    limits = httpx.Limits(max_connections=CLAIMERS * 2, max_keepalive_connections=0)
    with run_replicas(through(settings, bouncer, "wide"), count=2) as replicas:
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            for _ in range(ROUNDS):
                session, handoff = await api.escalated("jane")
                path = f"/api/v1/ai-sessions/{session['id']}/handoffs/{handoff['id']}/claim"
                start = asyncio.Event()

                async def claim(url: str, token: str, start: asyncio.Event = start) -> httpx.Response:
                    await start.wait()
                    return await http.post(url, headers={"Authorization": f"Bearer {token}"})

                tasks = [
                    asyncio.create_task(claim(replicas[i % len(replicas)] + path, token))
                    for i, token in enumerate(tokens)
                ]
                await asyncio.sleep(0.05)
                start.set()
                responses = await asyncio.gather(*tasks)

                statuses = Counter(r.status_code for r in responses)
                odd = [(r.status_code, r.text[:300]) for r in responses if r.status_code not in (200, 409)]
                assert statuses == {200: 1, 409: CLAIMERS - 1}, (statuses, odd, bouncer.log()[-2000:])
                winner = next(r.json()["claimed_by"] for r in responses if r.status_code == 200)
                assert {r.json()["claimed_by"]["id"] for r in responses if r.status_code == 409} == {winner}
                db.expire_all()
                row = await db.scalar(select(SessionHandoff).where(SessionHandoff.id == handoff["id"]))
                assert row is not None
                assert str(row.claimed_by) == winner
