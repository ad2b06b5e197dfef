"""Row-level security (migration 0009, handoffs.db.tenancy): behind the ``account_id`` filters.

A statement that forgets its filter sees the rows of its transaction's account only, and
none at all when nobody set one. The suite's DATABASE_URL is a superuser's, which row-level
security never holds, FORCE or not: these tests show the app's engines switch to DB_APP_ROLE,
where the tests' own engine (``engine``, the login role) sees every account's rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from handoffs.app import create_app
from handoffs.config import Settings
from handoffs.db.engine import create_engine, create_sessionmaker
from handoffs.db.models import Account, AISession, User
from handoffs.db.tenancy import scoped, system_engine
from handoffs.deps import CurrentUser, DbSession
from tests.conftest import Api

ACME_USERS = 5
GLOBEX_USERS = 2


@get("/api/v1/test-only/forgetful")
async def forgetful(db_session: DbSession, user: CurrentUser) -> dict[str, list[str]]:
    """The bug row-level security is there for: a handler whose queries forgot ``account_id``."""
    sessions = (await db_session.scalars(select(AISession.id))).all()
    emails = (await db_session.scalars(select(User.email))).all()
    return {"sessions": [str(s) for s in sessions], "emails": sorted(emails)}


@pytest.fixture
async def forgetful_client(
    settings: Settings, engine: AsyncEngine
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=create_app(settings, extra_handlers=[forgetful])) as client:
        yield client


@pytest.fixture
async def app_engine(settings: Settings, engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """An engine as the API builds its own: no fixed scope, DB_APP_ROLE. One connection, so a
    test sees what one transaction leaves on it for the next."""
    app_engine = create_engine(settings, pool_size=1, max_overflow=0)
    yield app_engine
    await app_engine.dispose()


async def _sessions_of_both(api: Api) -> tuple[str, str]:
    acme = await api.new_session("jane", title="Acme's")
    globex = await api.new_session("gus", title="Globex's")
    return acme["id"], globex["id"]


async def test_a_request_whose_query_forgets_account_id_sees_only_its_account(
    api: Api, forgetful_client: AsyncTestClient[Litestar]
) -> None:
    acme_session, globex_session = await _sessions_of_both(api)

    as_jane = await forgetful_client.get("/api/v1/test-only/forgetful", headers=api["jane"].headers)
    assert as_jane.status_code == 200, as_jane.text
    assert as_jane.json()["sessions"] == [acme_session]
    assert len(as_jane.json()["emails"]) == ACME_USERS
    assert all(email.endswith("@acme.test") for email in as_jane.json()["emails"])

    as_gus = await forgetful_client.get("/api/v1/test-only/forgetful", headers=api["gus"].headers)
    assert as_gus.status_code == 200, as_gus.text
    assert as_gus.json() == {"sessions": [globex_session], "emails": ["gina@globex.test", "gus@globex.test"]}


async def test_the_app_role_with_an_account_sees_and_writes_that_accounts_rows_only(
    api: Api, app_engine: AsyncEngine, engine: AsyncEngine
) -> None:
    acme_session, globex_session = await _sessions_of_both(api)
    acme, globex = api["jane"].account_id, api["gus"].account_id

    with scoped(acme):
        async with create_sessionmaker(app_engine)() as db:
            assert await db.scalar(text("SELECT current_user")) == "handoffs_app"
            assert [str(i) for i in (await db.scalars(select(AISession.id))).all()] == [acme_session]
            assert await db.scalar(select(func.count()).select_from(User)) == ACME_USERS
            assert (await db.scalars(select(Account.slug))).all() == ["acme-msp"]
            # Nor may it write into another account: the policy checks new rows too.
            with pytest.raises(DBAPIError, match="row-level security"):
                await db.execute(
                    text("UPDATE ai_sessions SET account_id = :other WHERE id = :id"),
                    {"other": globex, "id": UUID(acme_session)},
                )
    # The tests' own engine (the login role) sees both accounts' sessions, unchanged.
    async with engine.connect() as conn:
        rows = dict((await conn.execute(text("SELECT id::text, account_id FROM ai_sessions"))).tuples().all())
    assert rows == {acme_session: acme, globex_session: globex}


async def test_no_account_set_reads_nothing(api: Api, app_engine: AsyncEngine) -> None:
    await _sessions_of_both(api)
    async with app_engine.connect() as conn:
        assert await conn.scalar(text("SELECT current_user")) == "handoffs_app"
        for table in ("accounts", "users", "ai_sessions", "outbox"):
            assert await conn.scalar(text(f"SELECT count(*) FROM {table}")) == 0, table  # noqa: S608


async def test_the_system_scope_sees_every_account(api: Api, app_engine: AsyncEngine) -> None:
    await _sessions_of_both(api)
    async with system_engine(app_engine).connect() as conn:
        assert await conn.scalar(text("SELECT current_user")) == "handoffs_app"
        assert await conn.scalar(select(func.count()).select_from(User)) == ACME_USERS + GLOBEX_USERS
        assert await conn.scalar(select(func.count()).select_from(AISession)) == 2


async def test_nothing_outlives_the_transaction(api: Api, app_engine: AsyncEngine) -> None:
    """Behind PgBouncer (transaction pooling) the next transaction may run on a server connection
    this one used: role and account are transaction-local, gone at COMMIT."""
    async with app_engine.connect() as conn:
        with scoped(api["jane"].account_id):
            assert await conn.scalar(select(func.count()).select_from(User)) == ACME_USERS
        await conn.commit()
        # The same server connection, outside any transaction of SQLAlchemy's.
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        row = await raw.fetchrow(
            "SELECT current_user, session_user, current_setting('app.account_id', true) AS account"
        )
    assert row["current_user"] == row["session_user"] != "handoffs_app"
    assert not row["account"]


async def test_every_table_with_an_account_id_is_forced_under_a_policy(engine: AsyncEngine) -> None:
    """A table a later migration adds is not forgotten: this lists it."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("""
                    SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                           EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid) AS has_policy
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = 'public' AND c.relkind = 'r'
                      AND (c.relname = 'accounts' OR EXISTS (
                          SELECT FROM pg_attribute a
                          WHERE a.attrelid = c.oid AND a.attname = 'account_id' AND NOT a.attisdropped))
                """)
            )
        ).all()
    assert len(rows) == 16
    unprotected = [
        r.relname for r in rows if not (r.relrowsecurity and r.relforcerowsecurity and r.has_policy)
    ]
    assert unprotected == []
