"""Demo seed, the CLI and migrations, against the real database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from handoffs.config import Settings
from handoffs.db.models import Account, Team, User
from handoffs.domain.accounts.service import DEMO_USERS, seed_demo
from tests.conftest import Api
from tests.support.explain import Explain
from tests.support.replicas import ROOT, run_cli


async def _snapshot(db: AsyncSession) -> list[tuple[str, ...]]:
    users = await db.execute(select(User.email, User.name, User.role, User.password_hash, User.account_id))
    accounts = await db.execute(select(Account.slug, Account.id))
    teams = await db.execute(select(Team.name, Team.account_id, Team.id))
    return sorted(tuple(map(str, row)) for rows in (users, accounts, teams) for row in rows.all())


async def test_seeding_twice_changes_nothing(db: AsyncSession, engine: AsyncEngine) -> None:
    before = await _snapshot(db)
    assert await seed_demo(db) == 0
    assert await _snapshot(db) == before
    assert await db.scalar(select(func.count()).select_from(User)) == len(DEMO_USERS)
    assert await db.scalar(select(func.count()).select_from(Account)) == 2


async def test_seed_creates_the_documented_demo_users(db: AsyncSession, engine: AsyncEngine) -> None:
    rows = await db.execute(select(User.email, User.name, User.role, Account.name).join(Account))
    assert {(e, n, r.value, a) for e, n, r, a in rows.all()} == {
        (u.email, u.name, u.role.value, u.account) for u in DEMO_USERS
    }


async def test_cli_seed_and_migrate_are_idempotent(settings: Settings, engine: AsyncEngine) -> None:
    migrate = run_cli(settings, "migrate")
    assert migrate.returncode == 0, migrate.stderr
    seed = run_cli(settings, "seed")
    assert seed.returncode == 0, seed.stderr
    assert "seeded: 0 users added" in seed.stdout


async def test_cli_create_user_makes_a_user_who_can_sign_in(
    settings: Settings, api, engine: AsyncEngine
) -> None:  # type: ignore[no-untyped-def]
    created = run_cli(
        settings,
        "create-user", "--email", "new@initech.test", "--name", "Peter Gibbons",
        "--account", "Initech", "--role", "admin", "--password", "s3cret-pass",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    login = await api.call(
        None, "POST", "/api/v1/auth/login", json={"email": "new@initech.test", "password": "s3cret-pass"}
    )
    assert login.status_code == 200
    assert login.json()["user"]["role"] == "admin"
    again = run_cli(
        settings,
        "create-user", "--email", "new@initech.test", "--name", "Peter", "--account", "Initech", "--password", "x",
    )  # fmt: skip
    assert again.returncode != 0
    assert "already exists" in again.stderr


def test_serve_refuses_to_start_without_service_urls() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    result = subprocess.run(
        [sys.executable, "-m", "handoffs.cli", "serve", "--port", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "DATABASE_URL and REDIS_URL" in result.stderr


async def test_migrations_match_the_models(settings: Settings, engine: AsyncEngine) -> None:
    """`alembic check`: a model change without a migration fails here."""
    import asyncio

    from alembic import command

    from handoffs.db.engine import alembic_config

    await asyncio.to_thread(command.check, alembic_config(settings))


async def test_the_queue_read_the_service_runs_uses_the_partial_queue_index(
    db: AsyncSession, engine: AsyncEngine, api: Api
) -> None:
    from handoffs.domain.handoffs.search import queue_params, queue_statement

    # The planner's choice depends on the data: on a handful of rows any index will do, so
    # give it a queue worth the name (4,000 open handoffs over two accounts) and fresh stats.
    session, handoff = await api.escalated()
    await _copy_open_handoff(db, session["id"], handoff["id"], api["gus"].account_id, 2000)
    await _copy_open_handoff(db, session["id"], handoff["id"], api["sam"].account_id, 2000)
    await db.commit()
    await db.execute(text("ANALYZE ai_sessions, session_handoffs"))
    explain = Explain(queue_statement())
    plan = "\n".join(row[0] for row in await db.execute(explain, queue_params(api["sam"].account_id, 200)))
    assert "ix_handoffs_queue" in plan, plan
    assert "Sort" not in plan, plan  # the index gives the whole order: the scan stops at LIMIT


async def _copy_open_handoff(
    db: AsyncSession, session_id: str, handoff_id: str, account_id: Any, n: int
) -> None:
    """``n`` copies of a session and its open handoff, in ``account_id``."""

    async def columns(table: str) -> list[str]:
        rows = await db.execute(
            text(
                "SELECT column_name FROM information_schema.columns WHERE table_name = :t AND is_generated = 'NEVER'"
            ),
            {"t": table},
        )
        return [r[0] for r in rows]

    def select_list(cols: list[str], alias: str, **override: str) -> str:
        return ", ".join(override.get(c, f"{alias}.{c}") for c in cols)

    s_cols, h_cols = await columns("ai_sessions"), await columns("session_handoffs")
    # Column names come from the catalogue, values are bound: nothing from outside is spliced in.
    statement = (
        f"WITH s AS (INSERT INTO ai_sessions ({', '.join(s_cols)}) "  # noqa: S608
        f"SELECT {select_list(s_cols, 'a', id='gen_random_uuid()', account_id='CAST(:acct AS uuid)')} "
        "FROM ai_sessions a, generate_series(1, :n) WHERE a.id = CAST(:sid AS uuid) RETURNING id) "
        f"INSERT INTO session_handoffs ({', '.join(h_cols)}) "
        f"SELECT {select_list(h_cols, 'h', id='gen_random_uuid()', session_id='s.id', account_id='CAST(:acct AS uuid)')} "
        "FROM s, session_handoffs h WHERE h.id = CAST(:hid AS uuid)"
    )
    await db.execute(text(statement), {"acct": str(account_id), "sid": session_id, "hid": handoff_id, "n": n})


@pytest.mark.slow
def test_handoffs_serve_answers_on_the_port_it_is_given(settings: Settings, engine: AsyncEngine) -> None:
    import httpx

    from tests.support.replicas import run_serve

    with run_serve(settings) as served:
        login = httpx.post(
            f"{served.url}/api/v1/auth/login", json={"email": "jane@acme.test", "password": "demo"}
        )
        assert login.status_code == 200


async def test_a_unix_socket_database_url_works_as_documented(tmp_path: Path) -> None:
    """``postgresql://user@/db?host=/socket/dir``: the form pgserver and a local PostgreSQL use."""
    from handoffs.db.engine import create_engine
    from handoffs.embedded import EmbeddedPostgres

    postgres = EmbeddedPostgres(tmp_path / "postgres")
    await asyncio.to_thread(postgres.start)
    try:
        url = f"postgresql://postgres:@/postgres?host={postgres.data_dir}"  # the socket lives there
        # Not migrated: no app role to switch to.
        engine = create_engine(Settings(database_url=url), pool_size=1, app_role=False)
        try:
            async with engine.connect() as conn:
                assert await conn.scalar(text("SELECT current_setting('listen_addresses')")) == ""
                assert await conn.scalar(text("SELECT 1")) == 1
        finally:
            await engine.dispose()
    finally:
        await asyncio.to_thread(postgres.stop)
