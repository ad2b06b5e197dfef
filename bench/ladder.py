"""The escalation ladder's cost: a sweep's database time with N open escalations, and how late a
level fires after its due time on a real worker.

Starts embedded PostgreSQL and Redis (unless DATABASE_URL / REDIS_URL are set), migrates,
seeds, then:

1. Sweep cost. For N = 1,000, 5,000 and 10,000 open escalations of one account (none due),
   the sweep's statement (``jobs.ladder._DUE``) is run with EXPLAIN (ANALYZE) R times and its
   PostgreSQL execution time recorded; baseline in the same run and connection: ``SELECT 1``
   the same way. Also the whole ``step_up_due`` call in this process (wall clock).
2. Lateness. With 10,000 open escalations, M of them are given due times spread over the next
   ``--spread`` seconds; one ``handoffs worker`` process (its real cron, every second) fires
   them; lateness = the ``escalated`` bell entry's ``created_at`` minus the level's due time.

    .venv/bin/python bench/ladder.py            # full run (about a minute)
    .venv/bin/python bench/ladder.py --quick    # smoke run

Targets (issue #12): a level fires within 2 s of its time; a sweep over 10,000 open
escalations costs < 20 ms of PostgreSQL time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import (
    ROOT,
    command_line,
    machine,
    migrate_and_seed,
    percentile,
    run_loop,
    start_stack,
    write_json,
)

FILL = """
WITH s AS (
    INSERT INTO ai_sessions (id, account_id, owner_id, title, problem_summary, status, created_at, updated_at)
    SELECT gen_random_uuid(), :account_id, :user_id, 'bench ' || n, 'bench problem ' || n, 'escalated',
           now(), now()
    FROM generate_series(1, :n) AS n
    RETURNING id
)
INSERT INTO session_handoffs (id, account_id, session_id, intent, engineer_notes, priority, created_by,
    session_snapshot, assessment_status, psa_sync_status, state, version, escalation_level,
    ladder_started_at, ladder_next, next_escalation_at, created_at, updated_at)
SELECT gen_random_uuid(), :account_id, s.id, 'escalate', '', 'normal', :user_id,
    '{"problem_summary": "bench"}', 'ready', 'not_applicable', 'open', 0, 0,
    now(), 0, now() + interval '1 day', now(), now()
FROM s
"""


async def sweep_cost(settings: Any, seeded: Any, sizes: list[int], reps: int) -> list[dict[str, Any]]:
    from sqlalchemy import text

    from handoffs.db.engine import create_engine, create_sessionmaker
    from handoffs.db.tenancy import SYSTEM
    from handoffs.jobs.context import JobContext
    from handoffs.jobs.ladder import _DUE, step_up_due

    engine = create_engine(settings, scope=SYSTEM, app_role=False)  # as the tests' harness
    rows: list[dict[str, Any]] = []
    have = 0
    try:
        for n in sizes:
            async with engine.begin() as conn:
                await conn.execute(
                    text(FILL), {"account_id": seeded.account_id, "user_id": seeded.user_id, "n": n - have}
                )
            have = n
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("VACUUM ANALYZE session_handoffs"))
            sweep_ms, base_ms = [], []
            async with engine.connect() as conn:
                explain = "EXPLAIN (ANALYZE, FORMAT JSON) "
                for _ in range(reps):
                    plan = (
                        await conn.execute(
                            text(explain + str(_DUE.text)), {"now": datetime.now(UTC), "limit": 100}
                        )
                    ).scalar_one()
                    sweep_ms.append(plan[0]["Execution Time"])
                    base = (await conn.execute(text(explain + "SELECT 1"))).scalar_one()
                    base_ms.append(base[0]["Execution Time"])
                    await conn.rollback()
            jc = JobContext.__new__(JobContext)  # only what step_up_due reads: a sessionmaker and a relay
            jc.sessionmaker = create_sessionmaker(engine)
            jc.relay = None  # type: ignore[assignment]
            wall = []
            for _ in range(reps):
                started = time.perf_counter()
                await step_up_due(jc)
                wall.append((time.perf_counter() - started) * 1000)
            rows.append(
                {
                    "open": n,
                    "sweep_pg_ms_p50": statistics.median(sweep_ms),
                    "sweep_pg_ms_max": max(sweep_ms),
                    "select1_pg_ms_p50": statistics.median(base_ms),
                    "sweep_wall_ms_p50": statistics.median(wall),
                }
            )
            print(f"  {n:>6} open: sweep {rows[-1]['sweep_pg_ms_p50']:.3f} ms PG (SELECT 1: "
                  f"{rows[-1]['select1_pg_ms_p50']:.3f} ms), {rows[-1]['sweep_wall_ms_p50']:.2f} ms wall")  # fmt: skip
    finally:
        await engine.dispose()
    return rows


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``handoffs worker`` as its own process, with its real crons."""
    return subprocess.Popen(
        [sys.executable, "-m", "handoffs.cli", "worker"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def lateness(settings: Any, seeded: Any, due: int, spread: float) -> dict[str, Any]:
    from sqlalchemy import text

    from handoffs.db.engine import create_engine
    from handoffs.db.tenancy import SYSTEM

    engine = create_engine(settings, scope=SYSTEM, app_role=False)  # as the tests' harness
    try:
        await asyncio.sleep(3)  # the worker starts and sweeps once
        start = datetime.now(UTC) + timedelta(seconds=1)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    """
                    WITH picked AS (
                        SELECT id, row_number() OVER (ORDER BY id) AS k FROM session_handoffs
                        WHERE account_id = :a AND state = 'open' LIMIT :m
                    )
                    UPDATE session_handoffs h SET next_escalation_at =
                        CAST(:start AS timestamptz) + (p.k * CAST(:step AS double precision)) * interval '1 second'
                    FROM picked p WHERE h.id = p.id
                    """
                ),
                {"a": seeded.account_id, "m": due, "start": start, "step": spread / due},
            )
        late: list[float] = []
        deadline = time.monotonic() + spread + 30
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            async with engine.connect() as conn:
                fired = (
                    await conn.execute(
                        text(
                            "SELECT count(*) FROM handoff_timeline WHERE kind = 'escalated' AND account_id = :a"
                        ),
                        {"a": seeded.account_id},
                    )
                ).scalar_one()
            if fired >= due:
                break
        async with engine.connect() as conn:
            # Lateness: the timeline entry's time (the sweep's "now", written in the firing
            # transaction) minus the due time the level had, recomputed as the UPDATE above set it.
            result = await conn.execute(
                text(
                    """
                    SELECT extract(epoch FROM t.created_at - (CAST(:start AS timestamptz)
                        + (p.k * CAST(:step AS double precision)) * interval '1 second'))
                    FROM handoff_timeline t
                    JOIN (SELECT id, row_number() OVER (ORDER BY id) AS k FROM session_handoffs
                          WHERE account_id = :a) p ON p.id = t.handoff_id
                    WHERE t.kind = 'escalated' AND t.account_id = :a
                    """
                ),
                {"a": seeded.account_id, "start": start, "step": spread / due},
            )
            late = sorted(float(v) for (v,) in result.all())
    finally:
        await engine.dispose()
    return {
        "due": due,
        "fired": len(late),
        "late_s_p50": percentile(late, 0.5) if late else None,
        "late_s_p99": percentile(late, 0.99) if late else None,
        "late_s_max": late[-1] if late else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args(argv)
    sizes = [1000, 3000] if args.quick else [1000, 5000, 10000]
    reps = 5 if args.quick else 30
    with start_stack("handoffs-bench-ladder-", keep_data=False) as stack:
        settings = stack.settings()
        seeded = migrate_and_seed(settings, "jane@acme.test")
        print(f"== ladder bench ({stack.describe()})")
        print("== sweep cost (none due)")
        cost = run_loop(sweep_cost(settings, seeded, sizes, reps))
        print("== lateness on a real worker")
        worker = start_worker(stack.env(pythonpath=False))
        try:
            late = run_loop(lateness(settings, seeded, 50 if args.quick else 200, 5 if args.quick else 10))
        finally:
            worker.terminate()
            worker.wait(timeout=20)
        print(f"  {late}")
    result = {
        "command": command_line("ladder", argv),
        "machine": machine(),
        "sweep_cost": cost,
        "lateness": late,
    }
    write_json(result, Path(args.json) if args.json else None, "ladder")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
