"""Alembic environment: async, against the URL `handoffs migrate` passes in."""

import asyncio

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from handoffs.db.encryption import SecretJSON, SecretText
from handoffs.db.models import Account, StrEnumType  # registers every table on the metadata

config = context.config
target_metadata = Account.metadata


def render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Enum columns are plain strings in the database, encrypted ones text; render them so."""
    if type_ == "type" and isinstance(obj, StrEnumType):
        return "sa.String(length=20)"
    if type_ == "type" and isinstance(obj, SecretText | SecretJSON):
        return "sa.Text()"
    return False


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        render_item=render_item,
        compare_type=True,
        render_as_batch=False,
        # Render advanced-alchemy types as sa.GUID etc.; script.py.mako aliases them.
        user_module_prefix="sa.",
        **kwargs,  # type: ignore[arg-type]
    )


def run_migrations_offline() -> None:
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        # The owner is held to the tables' row-level security too (FORCE, migration 0009): a
        # migration that rewrites rows must see every account's. Transaction-local, as the
        # app's: behind PgBouncer nothing stays on the server connection.
        connection.execute(text("SELECT set_config('app.scope', 'system', true)"))
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_async_engine(
        str(config.get_main_option("sqlalchemy.url")),
        poolclass=pool.NullPool,
        connect_args=config.attributes.get("connect_args", {}),  # handoffs.db.engine.alembic_config
    )
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
