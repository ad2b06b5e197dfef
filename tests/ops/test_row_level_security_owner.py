"""Row-level security as managed PostgreSQL runs it: the owner is no superuser (docs/deployment.md).

RDS and its kin give an admin login with CREATEROLE, never a superuser nor BYPASSRLS. On an
embedded server of its own (roles are the cluster's: the shared test server's stay untouched),
such a login owns the database, migrates it (creating and granting ``handoffs_app`` itself),
seeds it through the CLI's system scope, and is then held to the FORCEd policies like the app.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from sqlalchemy import text

from handoffs.config import Settings
from handoffs.db.encryption import use_keys
from handoffs.db.engine import create_engine, create_sessionmaker, migrate
from handoffs.db.tenancy import SYSTEM, scoped
from handoffs.domain.accounts.service import DEMO_USERS, seed_demo
from handoffs.embedded import EmbeddedPostgres


async def test_a_createrole_owner_migrates_seeds_and_is_held_to_the_policies(tmp_path: Path) -> None:
    postgres = EmbeddedPostgres(tmp_path / "postgres")
    await asyncio.to_thread(postgres.start)
    try:
        admin = await asyncpg.connect(f"postgresql://postgres:@/postgres?host={postgres.data_dir}")
        try:
            await admin.execute("CREATE ROLE rds_admin LOGIN CREATEROLE")  # what a provider gives
            await admin.execute("CREATE DATABASE handoffs OWNER rds_admin")
        finally:
            await admin.close()
        settings = Settings(
            database_url=f"postgresql://rds_admin:@/handoffs?host={postgres.data_dir}",
            secret_key="test-secret-key-that-is-long-enough-for-hs256",
        )
        use_keys(settings.data_encryption_keys())
        await asyncio.to_thread(migrate, settings)

        cli, owner, app = (
            create_engine(settings, scope=SYSTEM),
            create_engine(settings, app_role=False),
            create_engine(settings),
        )
        try:
            async with create_sessionmaker(cli)() as db:
                assert await seed_demo(db) == len(DEMO_USERS)
                await db.commit()
            async with owner.connect() as conn:  # FORCE: the owner, unscoped, sees nothing
                assert await conn.scalar(text("SELECT current_user")) == "rds_admin"
                assert await conn.scalar(text("SELECT count(*) FROM users")) == 0
            async with cli.connect() as conn:
                assert await conn.scalar(text("SELECT current_user")) == "handoffs_app"
                globex = await conn.scalar(text("SELECT id FROM accounts WHERE slug = 'globex-msp'"))
            with scoped(globex):
                async with app.connect() as conn:
                    emails = (await conn.scalars(text("SELECT email FROM users ORDER BY email"))).all()
            assert emails == ["gina@globex.test", "gus@globex.test"]
        finally:
            for engine in (cli, owner, app):
                await engine.dispose()
    finally:
        await asyncio.to_thread(postgres.stop)
