"""CPU of one read transaction, layer by layer: where an authenticated read's database cost goes.

    .venv/bin/python bench/db_path.py            # 3 rounds of 2,000 transactions per layer
    .venv/bin/python bench/db_path.py --quick    # 1 round of 500

The same statement as ``GET /api/v1/notifications/unread-count`` (one ``count(*)`` under the
tenant's row-level security), run in this process against PostgreSQL (embedded, or
``DATABASE_URL``), one at a time, as:

- ``orm``: what a request does: an ``AsyncSession`` of the app's engine, scope set, ``scalar``,
  ``commit`` (``BEGIN``, the scope's ``set_config``, the query, ``COMMIT``);
- ``orm, no role switch``: the same with ``DB_APP_ROLE`` empty;
- ``core``: ``engine.connect()`` with the same statement object, then ``commit``;
- ``asyncpg``: one asyncpg connection, ``transaction()``, the ``set_config`` and the query as SQL.

Each figure is this process's CPU per transaction (``time.process_time``), so PostgreSQL's own
work is not in it; rounds alternate the order of the layers.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from common import command_line, git_state, machine, migrate_and_seed, start_stack, write_json


async def layers(settings: Any, user_id: Any, account_id: Any) -> dict[str, Callable[[], Awaitable[None]]]:
    from dataclasses import replace

    import asyncpg
    from sqlalchemy import func, select

    from handoffs.db.engine import create_engine, create_sessionmaker
    from handoffs.db.models import Notification
    from handoffs.db.tenancy import use_scope

    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    plain_sessions = create_sessionmaker(create_engine(replace(settings, db_app_role="")))
    raw = await asyncpg.connect(settings.database_url)
    query = select(func.count()).where(
        Notification.recipient_id == user_id,
        Notification.account_id == account_id,
        Notification.read_at.is_(None),
    )
    sql = "SELECT count(*) FROM notifications WHERE recipient_id = $1 AND account_id = $2 AND read_at IS NULL"

    async def orm() -> None:
        use_scope(account_id)
        async with sessions() as db:
            await db.scalar(query)
            await db.commit()

    async def orm_plain() -> None:
        use_scope(account_id)
        async with plain_sessions() as db:
            await db.scalar(query)
            await db.commit()

    async def core() -> None:
        use_scope(account_id)
        async with engine.connect() as conn:
            await conn.scalar(query)
            await conn.commit()

    async def bare() -> None:
        async with raw.transaction():
            await raw.fetchval("SELECT set_config('app.account_id', $1, true)", str(account_id))
            await raw.fetchval(sql, user_id, account_id)

    return {"orm": orm, "orm, no role switch": orm_plain, "core": core, "asyncpg": bare}


async def run(settings: Any, email: str, rounds: int, n: int) -> dict[str, list[float]]:
    from sqlalchemy import select

    from handoffs.db.engine import create_engine, create_sessionmaker
    from handoffs.db.models import User
    from handoffs.db.tenancy import SYSTEM, use_scope

    use_scope(SYSTEM)
    async with create_sessionmaker(create_engine(settings))() as db:
        user = (await db.scalars(select(User).where(User.email == email))).one()
    variants = await layers(settings, user.id, user.account_id)
    for f in variants.values():  # warm-up: statement caches, the pool
        for _ in range(100):
            await f()
    per: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            t = time.process_time()
            for _ in range(n):
                await variants[name]()
            per[name].append((time.process_time() - t) * 1e6 / n)
            print(f"  round {r} {name:<20} {per[name][-1]:7.0f} µs CPU per transaction", flush=True)
    return per


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rounds", type=int)
    p.add_argument("-n", type=int)
    p.add_argument("--no-json", action="store_true")
    args = p.parse_args(argv)
    rounds, n = args.rounds or (1 if args.quick else 3), args.n or (500 if args.quick else 2000)
    with start_stack("handoffs-dbpath-", False) as stack:
        settings = stack.settings()
        migrate_and_seed(settings, "jane@acme.test")
        per = asyncio.run(run(settings, "sam@acme.test", rounds, n))
    base = sorted(per["asyncpg"])[len(per["asyncpg"]) // 2]
    print("\n| layer | CPU per transaction (median) | ÷ asyncpg |\n|---|--:|--:|")
    for name, values in per.items():
        median = sorted(values)[len(values) // 2]
        print(f"| {name} | {median:,.0f} µs | {median / base:.1f}x |")
    if not args.no_json:
        write_json(
            {"bench": "db_path", "machine": machine(), "git": git_state(), "per_us": per,
             "command": command_line("db_path", argv), "finished_at": datetime.now(UTC).isoformat()},
            None, "db_path",
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
