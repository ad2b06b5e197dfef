"""Worker throughput (outbox → arq → job vs. a no-op arq job, same run) and 500 slow enrichments.

Starts embedded PostgreSQL and Redis (unless DATABASE_URL / REDIS_URL are set),
migrates, seeds the demo users, then measures two things against ONE arq
worker process, started from this file with the options ``handoffs worker``
uses (``worker_options(settings)``, INFO logging like the CLI), except that the
assessor is a fake and the outbox sweep cron is left out (this process does the
dispatching, so a sweep racing it would blur what is timed):

1. Throughput. The fake assessor returns a fixed, valid ``AssessmentResult`` at
   once. Per round, N escalations are bulk-inserted as the escalate request
   writes them (AI session with a transcript, ``SessionHandoff`` with its
   snapshot and ``assessment_status=pending``, one ``enrich_escalation``
   outbox row), then this process hands them on with ``OutboxRelay.dispatch``
   in chunks of 500 (the sweep's batch size) and the clock runs until every
   row is ``done``. Each job loads the handoff, calls the assessor, stores the
   assessment and writes + publishes a ``handoff_assessment_ready`` event, as
   in production. Baseline, same worker, same run: N no-op arq jobs enqueued
   one by one with ``ArqRedis.enqueue_job``. Rounds alternate the order (ABBA).
2. Concurrency. A fresh worker process whose fake assessor sleeps 20 s; 500
   escalations dispatched at once; the clock runs until all 500 assessments
   are stored. PostgreSQL connections of the worker are sampled from
   pg_stat_activity meanwhile.

    .venv/bin/python bench/jobs.py            # full run (3-6 minutes on 2 shared cores)
    .venv/bin/python bench/jobs.py --quick    # smoke run (about 40 s)

Durations come from timestamps the worker writes (``outbox.completed_at``; arq's
``finish_time`` for no-op jobs) minus the wall clock when dispatch began: same
machine, same clock, so polling intervals do not inflate them. A job counts
only if its outbox row is ``done`` AND its handoff's assessment is ``ready``;
everything else is reported as a failure, never as throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import msgspec

# bench/common.py, a sibling: run as a script, bench/ is sys.path[0] (from the repo root or bench/).
from common import (
    Seeded,
    busy_seconds,
    clear_health,
    command_line,
    git_state,
    machine,
    migrate_and_seed,
    service_cpu,
    service_pids,
    start_stack,
    start_worker,
    stop_worker,
    wait_healthy,
    write_json,
)

from handoffs.integrations.ai import AssessmentInput, AssessmentResult, ModelOutput

THIS = Path(__file__).resolve()
NOOP = "bench_noop"
#: application_name of this process's own DB connections, left out of the worker's count.
DRIVER_APP = "bench-driver"
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"  # as `handoffs` configures it

# -- worker side: the fake model and the no-op job ----------------------------------------

FIXED_OUTPUT: ModelOutput = msgspec.convert(
    {
        "assessment": {
            "likely_cause": "The Outlook profile still points at the on-premises autodiscover "
            "record after the mailbox moved to Exchange Online.",
            "what_was_tried": ["Re-created the Outlook profile", "Cleared the OST cache"],
            "next_steps": [
                "Check the autodiscover CNAME and the SCP in Active Directory.",
                "Test with the Microsoft Remote Connectivity Analyzer.",
                "Re-create the profile once autodiscover answers with Exchange Online.",
            ],
            "risk": "medium",
            "confidence": 0.7,
        },
        "escalation_package": {
            "summary": "Outlook cannot sync after the mailbox move; OWA works.",
            "symptoms": ["Outlook loops on 'Trying to connect'"],
            "environment": ["Exchange Online", "Outlook for Microsoft 365"],
            "open_questions": ["Is there still an on-premises Exchange server?"],
            "documentation_markdown": "## Outlook sync after mailbox move\n\n- Profile re-created\n"
            "- OST cleared\n\nNext: fix autodiscover.",
        },
    },
    ModelOutput,
)


class FakeAssessor:
    """A stand-in for the model: one fixed, valid result, after ``latency`` seconds (0: at once).

    With a latency it records when each call started and ended (wall clock),
    so the driver can line its connection samples up with the sleeps.
    """

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.calls = 0
        self.inflight = 0
        self.max_inflight = 0
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.result = AssessmentResult(
            output=FIXED_OUTPUT,
            source="anthropic",
            model="bench-fake-model",
            input_tokens=1200,
            output_tokens=450,
            cache_read_tokens=900,
        )

    async def assess(self, data: AssessmentInput, progress: Any = None) -> AssessmentResult:
        self.calls += 1
        if not self.latency:
            return self.result
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        self.starts.append(time.time())
        try:
            await asyncio.sleep(self.latency)
        finally:
            self.inflight -= 1
            self.ends.append(time.time())
        return self.result

    def stats(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "max_inflight": self.max_inflight,
            "starts": self.starts,
            "ends": self.ends,
        }


def batching_stats(ctx: dict[str, Any]) -> dict[str, Any]:
    """How many batches the worker's coalescers and relay ran, for how many items: the group-commit factor."""
    from handoffs.jobs.context import CTX_KEY

    jc = ctx.get(CTX_KEY)
    if jc is None:
        return {}
    stats = {c.name: {"batches": c.batches, "items": c.items} for c in jc._coalescers.values()}
    stats["relay"] = {"batches": jc.relay.batches, "items": jc.relay.dispatched}
    return stats


async def bench_noop(ctx: dict[str, Any], i: int) -> int:
    """The baseline job: arq's own cost (dequeue, run, store the result) and nothing else."""
    return i


def bench_worker_options(settings: Any, assessor: FakeAssessor) -> dict[str, Any]:
    from arq import func

    from handoffs.jobs.worker import worker_options

    options = worker_options(settings, extra_ctx={"assessor": assessor})
    options["functions"] = [*options["functions"], func(bench_noop, name=NOOP)]
    options["cron_jobs"] = []  # this process dispatches; a sweep racing it would blur the timing
    return options


def worker_child(latency: float, stats_path: Path, quiet: bool) -> int:
    """The worker process: what `handoffs worker` runs, with the fake assessor and the no-op job."""
    from handoffs.config import Settings
    from handoffs.jobs.worker import run_worker

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format=LOG_FORMAT)
    assessor = FakeAssessor(latency)
    worker = run_worker(bench_worker_options(Settings.from_env(), assessor))  # until SIGTERM
    stats_path.write_text(
        json.dumps(
            {
                "jobs_complete": worker.jobs_complete,
                "jobs_failed": worker.jobs_failed,
                "jobs_retried": worker.jobs_retried,
                "batching": batching_stats(worker.ctx),
                "assessor": assessor.stats(),
            }
        )
    )
    return 0


# -- driver side: the worker under test ---------------------------------------------------


class WorkerProcess:
    """ONE worker process, this file run with ``--worker-child``."""

    mode = "separate process"

    def __init__(self, env: dict[str, str], data_dir: Path, latency: float, quiet: bool) -> None:
        self.env = env
        self.latency = latency
        self.quiet = quiet
        tag = f"{int(latency)}s-{uuid4().hex[:6]}"
        self.log_path = data_dir / f"worker-{tag}.log"
        self.stats_path = data_dir / f"worker-{tag}.json"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0

    async def start(self, redis: Any) -> None:
        args = [sys.executable, str(THIS), "--worker-child", "--latency", str(self.latency),
                "--stats", str(self.stats_path)] + (["--quiet-worker"] if self.quiet else [])  # fmt: skip
        self.proc = await start_worker(redis, args, self.env, self.log_path)
        self.pid = self.proc.pid

    async def stop(self) -> dict[str, Any]:
        if self.proc is None:
            return {}
        await stop_worker(self.proc)
        self.proc = None
        with contextlib.suppress(OSError, ValueError):
            return dict(json.loads(self.stats_path.read_text()))
        return {}


class InProcessWorker:
    """The arq Worker on this process's event loop (``--in-process``): driver and worker share a core."""

    mode = "same process as the driver"

    def __init__(self, settings: Any, latency: float) -> None:
        self.settings = settings
        self.assessor = FakeAssessor(latency)
        self.pid = os.getpid()
        self.worker: Any = None
        self.task: asyncio.Task[None] | None = None

    async def start(self, redis: Any) -> None:
        from arq import Worker

        await clear_health(redis)
        self.worker = Worker(**bench_worker_options(self.settings, self.assessor), handle_signals=False)
        self.task = asyncio.create_task(self.worker.main())
        task = self.task
        await wait_healthy(redis, lambda: not task.done())

    async def stop(self) -> dict[str, Any]:
        if self.task is None:
            return {}
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.worker.close()
        self.task = None
        return {
            "jobs_complete": self.worker.jobs_complete,
            "jobs_failed": self.worker.jobs_failed,
            "jobs_retried": self.worker.jobs_retried,
            "batching": batching_stats(self.worker.ctx),
            "assessor": self.assessor.stats(),
        }


# -- driver side: CPU and connection accounting ----------------------------------------------


class Cpu:
    """CPU seconds of the worker process and of our PostgreSQL + Redis (psutil, which pgserver brings)."""

    def __init__(self, service_pids: list[int]) -> None:
        try:
            import psutil
        except ImportError:  # pragma: no cover
            self.psutil: Any = None
            return
        self.psutil = psutil
        self.services = [psutil.Process(pid) for pid in service_pids if psutil.pid_exists(pid)]

    def sample(self, worker_pid: int) -> dict[str, float] | None:
        """CPU seconds so far: worker (user, system), this driver process, services, whole machine."""
        if self.psutil is None:
            return None
        try:
            w = self.psutil.Process(worker_pid).cpu_times()
        except self.psutil.Error:
            return None
        me = self.psutil.Process().cpu_times()
        m = self.psutil.cpu_times()
        return {
            "worker": w.user + w.system,
            "worker_system": w.system,
            # With --in-process the driver IS the worker; count it once.
            "driver": 0.0 if worker_pid == os.getpid() else me.user + me.system,
            "services": sum(service_cpu(p) for p in self.services),
            "machine": busy_seconds(m),
            "steal": getattr(m, "steal", 0.0),
        }


async def redis_calls(redis: Any) -> dict[str, int]:
    """Commands Redis has executed so far, by name (INFO commandstats): exact, unlike CPU under noise."""
    info = await redis.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items() if isinstance(v, dict)}


def _calls_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    delta = {k: after[k] - before.get(k, 0) for k in after}
    return {k: v for k, v in sorted(delta.items(), key=lambda kv: -kv[1]) if v}


CONNECTIONS_SQL = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE state <> 'idle') AS busy,
       count(*) FILTER (WHERE state LIKE 'idle in transaction%') AS idle_in_tx
FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend'
  AND coalesce(application_name, '') NOT LIKE 'bench-%'
"""


class ConnectionSampler:
    """Samples the worker's PostgreSQL connections (every client backend that is not ours)."""

    def __init__(self, engine: Any, interval: float = 0.2) -> None:
        self.engine = engine
        self.interval = interval
        self.samples: list[tuple[float, int, int, int]] = []  # (wall time, total, busy, idle in tx)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        from sqlalchemy import text

        async with self.engine.connect() as conn:
            while True:
                row = (await conn.execute(text(CONNECTIONS_SQL))).one()
                await conn.commit()
                self.samples.append((time.time(), int(row.total), int(row.busy), int(row.idle_in_tx)))
                await asyncio.sleep(self.interval)

    def start(self) -> None:
        self.samples.clear()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def max_of(self, index: int, start: float = 0.0, end: float = float("inf")) -> int | None:
        values = [s[index] for s in self.samples if start <= s[0] <= end]
        return max(values) if values else None


# -- driver side: data -----------------------------------------------------------------------


NOTES = (
    "Tried re-creating the Outlook profile and clearing the OST cache; sync still fails "
    "after the mailbox move. Needs someone with Exchange admin access."
)


async def create_escalations(
    sessionmaker: Any, owner: Seeded, n: int, messages: int
) -> tuple[list[UUID], list[UUID]]:
    """``n`` escalations as ``HandoffService.hand_off`` leaves them, minus the rows this bench does not run.

    Per escalation: an escalated AI session with a ``messages``-long transcript,
    a pending ``SessionHandoff`` whose snapshot holds that transcript, and one
    ``enrich_escalation`` outbox row (the email and PSA rows are other jobs).
    Multi-row INSERTs, so thousands take a second or two. Returns (handoff ids, outbox ids).
    """
    from sqlalchemy import insert

    from handoffs.db.models import AISession, OutboxMessage, SessionHandoff, SessionMessage
    from handoffs.enums import AssessmentStatus, HandoffIntent, JobTopic, MessageRole, Priority, SessionStatus

    handoff_ids: list[UUID] = []
    outbox_ids: list[UUID] = []
    now = datetime.now(UTC).isoformat()
    summary = "Outlook is failing to sync email after the mailbox moved to Exchange Online; OWA works."
    transcript = [
        {
            "role": (MessageRole.user if k % 2 == 0 else MessageRole.assistant).value,
            "content": f"Step {k}: checked the autodiscover record and the OST size; "
            "the profile still loops on 'Trying to connect'.",
        }
        for k in range(messages)
    ]
    async with sessionmaker() as db:
        for start in range(0, n, 1000):
            chunk = range(start, min(n, start + 1000))
            sessions = [
                {
                    "account_id": owner.account_id,
                    "owner_id": owner.user_id,
                    "title": f"Outlook sync #{i}",
                    "problem_summary": summary,
                    "psa_ticket_id": None,
                    "status": SessionStatus.escalated,
                }
                for i in chunk
            ]
            session_ids = list(
                await db.scalars(
                    insert(AISession).returning(AISession.id, sort_by_parameter_order=True), sessions
                )
            )
            if messages:
                await db.execute(
                    insert(SessionMessage),
                    [
                        {"account_id": owner.account_id, "session_id": sid, **m}
                        for sid in session_ids
                        for m in transcript
                    ],
                )
            handoffs = [
                {
                    "account_id": owner.account_id,
                    "session_id": sid,
                    "intent": HandoffIntent.escalate,
                    "engineer_notes": NOTES,
                    "priority": Priority.high,
                    "created_by": owner.user_id,
                    "assessment_status": AssessmentStatus.pending,
                    "session_snapshot": {
                        "title": s["title"],
                        "problem_summary": summary,
                        "psa_ticket_id": None,
                        "status": SessionStatus.active.value,
                        "messages": [{**m, "created_at": now} for m in transcript],
                    },
                }
                for sid, s in zip(session_ids, sessions, strict=True)
            ]
            new_handoffs = list(
                await db.scalars(
                    insert(SessionHandoff).returning(SessionHandoff.id, sort_by_parameter_order=True),
                    handoffs,
                )
            )
            handoff_ids += new_handoffs
            outbox_ids += list(
                await db.scalars(
                    insert(OutboxMessage).returning(OutboxMessage.id, sort_by_parameter_order=True),
                    [
                        {
                            "account_id": owner.account_id,
                            "topic": JobTopic.enrich_escalation,
                            "payload": {"handoff_id": str(hid), "session_id": str(sid)},
                        }
                        for hid, sid in zip(new_handoffs, session_ids, strict=True)
                    ],
                )
            )
        await db.commit()
    return handoff_ids, outbox_ids


# -- driver side: one timed phase --------------------------------------------------------------


@dataclass
class Phase:
    kind: str  # "job path" | "no-op" | "slow model"
    round: int  # 0 = warm-up
    jobs: int
    ok: int = 0
    failed: int = 0
    #: outbox rows that took more than one attempt / arq results marked unsuccessful
    retried: int = 0
    arq_failed: int = 0
    #: seconds from the start of dispatch until the last row was handed to arq
    enqueue_s: float = 0.0
    #: seconds from the start of dispatch until the last job finished (worker timestamps)
    elapsed_s: float = 0.0
    #: seconds until this process saw everything finished (includes polling)
    observed_s: float = 0.0
    #: the handoff_assessment_ready events: how many were published, and when the last was
    events_published: int | None = None
    events_s: float | None = None
    timed_out: bool = False
    cpu_s: dict[str, float] = field(default_factory=dict)
    #: Redis commands executed during the phase (all clients: worker, and this driver's enqueues)
    redis_calls: dict[str, int] = field(default_factory=dict)
    max_worker_connections: int | None = None
    max_worker_connections_busy: int | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class Driver:
    settings: Any
    owner: Seeded
    engine: Any
    sessionmaker: Any
    arq: Any
    relay: Any
    cpu: Cpu
    sampler: ConnectionSampler
    chunk: int
    messages: int


def _cpu_delta(before: dict[str, float] | None, after: dict[str, float] | None) -> dict[str, float]:
    if before is None or after is None:
        return {}
    return {k: round(after[k] - before[k], 3) for k in after}


async def _wait(predicate: Any, seconds: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if await predicate():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def measured(
    d: Driver, phase: Phase, worker_pid: int, finished: Callable[[], Awaitable[bool]], seconds: float
) -> AsyncIterator[float]:
    """Around a phase's enqueueing (the block; it gets the wall-clock start): then wait until
    ``finished()`` (or ``seconds``), and record the times, CPU, Redis calls and connections."""
    d.sampler.start()
    calls_before = await redis_calls(d.arq)
    cpu_before = d.cpu.sample(worker_pid)
    t0 = time.perf_counter()
    yield time.time()
    phase.enqueue_s = time.perf_counter() - t0
    phase.timed_out = not await _wait(finished, seconds)
    phase.observed_s = time.perf_counter() - t0
    phase.cpu_s = _cpu_delta(cpu_before, d.cpu.sample(worker_pid))
    phase.redis_calls = _calls_delta(calls_before, await redis_calls(d.arq))
    await d.sampler.stop()
    phase.max_worker_connections = d.sampler.max_of(1)
    phase.max_worker_connections_busy = d.sampler.max_of(2)


async def job_path_phase(
    d: Driver, worker_pid: int, kind: str, round_no: int, n: int, seconds: float
) -> tuple[Phase, float]:
    """Dispatch ``n`` fresh escalations' enrich rows and wait until every one is done; return (phase, t0)."""
    from sqlalchemy import text

    handoff_ids, outbox_ids = await create_escalations(d.sessionmaker, d.owner, n, d.messages)
    phase = Phase(kind=kind, round=round_no, jobs=n)

    async def finished() -> bool:
        async with d.sessionmaker() as db:
            left = await db.scalar(
                text(
                    "SELECT count(*) FROM outbox WHERE topic = 'enrich_escalation' "
                    "AND status NOT IN ('done', 'failed')"
                )
            )
        return left == 0

    errors_before = d.relay.errors
    dispatched = 0
    async with measured(d, phase, worker_pid, finished, seconds) as t0_wall:
        for i in range(0, n, d.chunk):
            dispatched += await d.relay.dispatch(outbox_ids[i : i + d.chunk])
    phase.notes["dispatched"] = dispatched
    phase.notes["dispatch_errors"] = d.relay.errors - errors_before

    # Events are written and published by the job after it stores the assessment.
    hid_strs = [str(h) for h in handoff_ids]
    events_sql = text(
        """
        SELECT count(*) AS published, max(completed_at) AS last
        FROM outbox
        WHERE topic = 'event' AND status = 'done'
          AND payload->>'type' = 'handoff_assessment_ready'
          AND payload->>'handoff_id' = ANY(CAST(:ids AS text[]))
        """
    )

    async def events_done() -> bool:
        async with d.sessionmaker() as db:
            published = (await db.execute(events_sql, {"ids": hid_strs})).one().published
        return bool(published == n)

    await _wait(events_done, 10, 0.1)
    async with d.sessionmaker() as db:
        row = (
            await db.execute(
                text(
                    """
                    SELECT count(*) FILTER (WHERE o.status = 'done' AND h.assessment_status = 'ready') AS ok,
                           count(*) FILTER (WHERE o.attempts > 1) AS retried,
                           max(o.completed_at) FILTER (WHERE o.status = 'done') AS last_done
                    FROM outbox o JOIN session_handoffs h ON h.id = (o.payload->>'handoff_id')::uuid
                    WHERE o.id = ANY(CAST(:ids AS uuid[]))
                    """
                ),
                {"ids": [str(i) for i in outbox_ids]},
            )
        ).one()
        ev = (await db.execute(events_sql, {"ids": hid_strs})).one()
    phase.ok = int(row.ok)
    phase.failed = n - phase.ok
    phase.retried = int(row.retried)
    if row.last_done is not None:
        phase.elapsed_s = row.last_done.timestamp() - t0_wall
    phase.events_published = int(ev.published)
    if ev.last is not None:
        phase.events_s = ev.last.timestamp() - t0_wall
    phase.arq_failed = await arq_failures(d.arq, [str(i) for i in outbox_ids])
    return phase, t0_wall


async def arq_failures(arq: Any, job_ids: list[str]) -> int:
    from arq.jobs import Job

    failed = 0
    for jid in job_ids:
        info = await Job(jid, arq).result_info()
        if info is None or not info.success:
            failed += 1
    return failed


async def noop_phase(d: Driver, worker_pid: int, round_no: int, n: int, seconds: float) -> Phase:
    """Enqueue ``n`` no-op arq jobs one by one and wait for all their results."""
    from arq.constants import result_key_prefix
    from arq.jobs import Job

    phase = Phase(kind="no-op", round=round_no, jobs=n)
    job_ids = [f"bench-noop-{uuid4().hex}" for _ in range(n)]
    keys = [result_key_prefix + jid for jid in job_ids]

    async def finished() -> bool:
        return bool(await d.arq.exists(*keys) == n)

    refused = 0
    async with measured(d, phase, worker_pid, finished, seconds) as t0_wall:
        for i, jid in enumerate(job_ids):
            if await d.arq.enqueue_job(NOOP, i, _job_id=jid) is None:
                refused += 1
    last = 0.0
    for i, jid in enumerate(job_ids):
        info = await Job(jid, d.arq).result_info()
        if info is not None and info.success and info.result == i:
            phase.ok += 1
            last = max(last, info.finish_time.timestamp())
        elif info is not None and info.job_try > 1:
            phase.retried += 1
    phase.failed = n - phase.ok
    phase.arq_failed = phase.failed
    phase.notes["refused_enqueues"] = refused
    if last:
        phase.elapsed_s = last - t0_wall
    return phase


# -- the benchmark ---------------------------------------------------------------------------


@dataclass
class Plan:
    jobs: int
    rounds: int
    warmup: int
    slow_jobs: int
    slow_latency: float
    messages: int
    chunk: int
    in_process: bool
    quiet_worker: bool


def make_worker(plan: Plan, settings: Any, env: dict[str, str], data_dir: Path, latency: float) -> Any:
    if plan.in_process:
        return InProcessWorker(settings, latency)
    return WorkerProcess(env, data_dir, latency, plan.quiet_worker)


def log_phase(p: Phase) -> None:
    tag = "warm-up" if p.round == 0 else f"round {p.round}"
    extra = " TIMED OUT" if p.timed_out else ""
    print(
        f"  {tag:<8} {p.kind:<10} {p.jobs:>5} jobs  ok={p.ok} failed={p.failed} "
        f"enqueue={p.enqueue_s:.2f}s done-after={p.elapsed_s:.2f}s -> {p.rate:7.1f} jobs/s"
        f"  max worker DB conns={p.max_worker_connections}{extra}",
        flush=True,
    )


async def benchmark(
    settings: Any, owner: Seeded, svc: Any, env: dict[str, str], data_dir: Path, plan: Plan
) -> dict[str, Any]:
    from sqlalchemy.ext.asyncio import create_async_engine

    from handoffs.db.engine import create_sessionmaker
    from handoffs.events import EventBus
    from handoffs.jobs.queue import create_arq_pool
    from handoffs.outbox.arq_enqueue import ArqJobQueue
    from handoffs.outbox.relay import OutboxRelay

    engine = create_async_engine(
        settings.sqlalchemy_url,
        pool_size=5,
        max_overflow=5,
        connect_args={"server_settings": {"application_name": DRIVER_APP}},
    )
    monitor = create_async_engine(
        settings.sqlalchemy_url,
        pool_size=1,
        max_overflow=0,
        connect_args={"server_settings": {"application_name": "bench-monitor"}},
    )
    arq = await create_arq_pool(settings)
    sessionmaker = create_sessionmaker(engine)
    d = Driver(
        settings=settings,
        owner=owner,
        engine=engine,
        sessionmaker=sessionmaker,
        arq=arq,
        relay=OutboxRelay(sessionmaker, EventBus(arq), ArqJobQueue(arq)),
        cpu=Cpu(service_pids(svc)),
        sampler=ConnectionSampler(monitor),
        chunk=plan.chunk,
        messages=plan.messages,
    )
    phases: list[Phase] = []
    timeout = max(120.0, plan.jobs / 5)  # generous: a shared machine can slow a run several-fold
    try:
        # 1. throughput: zero-latency fake model, job path vs. no-op, ABBA.
        worker = make_worker(plan, settings, env, data_dir, 0.0)
        await worker.start(arq)
        print(f"throughput: worker ({worker.mode}, pid {worker.pid}), max_jobs={settings.worker_max_jobs}")
        try:
            for kind in ("no-op", "job path"):
                if kind == "no-op":
                    p = await noop_phase(d, worker.pid, 0, plan.warmup, timeout)
                else:
                    p, _ = await job_path_phase(d, worker.pid, kind, 0, plan.warmup, timeout)
                log_phase(p)
                phases.append(p)
            for round_no in range(1, plan.rounds + 1):
                order = ("no-op", "job path") if round_no % 2 else ("job path", "no-op")
                for kind in order:
                    if kind == "no-op":
                        p = await noop_phase(d, worker.pid, round_no, plan.jobs, timeout)
                    else:
                        p, _ = await job_path_phase(d, worker.pid, kind, round_no, plan.jobs, timeout)
                    log_phase(p)
                    phases.append(p)
                    if p.timed_out:
                        raise RuntimeError(f"{kind} round {round_no} did not finish within {timeout:.0f}s")
                    await asyncio.sleep(0.5)
        finally:
            throughput_worker = await worker.stop()

        # 2. concurrency: a fake model that sleeps.
        worker = make_worker(plan, settings, env, data_dir, plan.slow_latency)
        await worker.start(arq)
        print(
            f"slow model: {plan.slow_jobs} enrichments x {plan.slow_latency:g}s "
            f"(worker {worker.mode}, pid {worker.pid})",
            flush=True,
        )
        try:
            slow, t0_wall = await job_path_phase(
                d, worker.pid, "slow model", 1, plan.slow_jobs, plan.slow_latency * 3 + 60
            )
        finally:
            slow_worker = await worker.stop()
        samples = list(d.sampler.samples)
        starts = sorted(slow_worker.get("assessor", {}).get("starts", []))
        ends = sorted(slow_worker.get("assessor", {}).get("ends", []))
        if starts and ends:
            # While every model call was asleep: after the last started, before the first returned.
            asleep_from, asleep_to = starts[-1], ends[0]
            slow.notes["all_started_after_s"] = round(starts[-1] - t0_wall, 3)
            slow.notes["first_started_after_s"] = round(starts[0] - t0_wall, 3)
            slow.notes["all_asleep_window_s"] = round(max(0.0, asleep_to - asleep_from), 3)
            slow.notes["first_returned_after_s"] = round(ends[0] - t0_wall, 3)
            slow.notes["last_returned_after_s"] = round(ends[-1] - t0_wall, 3)
            slow.notes["max_conns_while_all_asleep"] = d.sampler.max_of(1, asleep_from, asleep_to)
            slow.notes["max_busy_conns_while_all_asleep"] = d.sampler.max_of(2, asleep_from, asleep_to)
            slow.notes["max_idle_in_tx_while_all_asleep"] = d.sampler.max_of(3, asleep_from, asleep_to)
        slow.notes["max_idle_in_tx"] = d.sampler.max_of(3)
        slow.notes["assessor_max_inflight"] = slow_worker.get("assessor", {}).get("max_inflight")
        slow.notes["assessor_calls"] = slow_worker.get("assessor", {}).get("calls")
        log_phase(slow)
        phases.append(slow)
        final = await final_state(sessionmaker)
    finally:
        await arq.aclose()
        await engine.dispose()
        await monitor.dispose()

    return {
        "plan": asdict(plan),
        "worker_mode": "in-process" if plan.in_process else "separate process",
        "settings": {
            "worker_max_jobs": settings.worker_max_jobs,
            "db_pool_size": settings.db_pool_size,
            "db_max_overflow": settings.db_max_overflow,
            "arq_poll_delay_s": 0.5,  # arq's default; worker_options does not set it
        },
        "phases": [{**asdict(p), "rate": round(p.rate, 1)} for p in phases],
        "throughput_worker": {k: v for k, v in throughput_worker.items() if k != "assessor"},
        "slow_worker": {
            **{k: v for k, v in slow_worker.items() if k != "assessor"},
            "assessor_calls": slow_worker.get("assessor", {}).get("calls"),
        },
        "final_state": final,
        "connection_samples": samples,
    }


async def final_state(sessionmaker: Any) -> dict[str, Any]:
    """Every row in the database at the end: all outbox rows done, all handoffs ready?"""
    from sqlalchemy import text

    async with sessionmaker() as db:
        outbox = dict((await db.execute(text("SELECT status, count(*) FROM outbox GROUP BY status"))).all())
        handoffs = dict(
            (
                await db.execute(
                    text(
                        "SELECT assessment_status, count(*) FROM session_handoffs GROUP BY assessment_status"
                    )
                )
            ).all()
        )
    return {
        "outbox_by_status": outbox,
        "handoffs_by_assessment_status": handoffs,
        "all_done": set(outbox) <= {"done"} and set(handoffs) <= {"ready"},
    }


def summarise(result: dict[str, Any], target_rate: float, slow_target: float) -> dict[str, Any]:
    timed = [p for p in result["phases"] if p["round"] > 0]
    job = [p for p in timed if p["kind"] == "job path"]
    noop = [p for p in timed if p["kind"] == "no-op"]
    slow = next(p for p in result["phases"] if p["kind"] == "slow model")

    def agg(ps: list[dict[str, Any]]) -> float:
        """All rounds together: ok jobs / seconds."""
        secs = sum(p["elapsed_s"] for p in ps)
        return sum(p["ok"] for p in ps) / secs if secs else 0.0

    job_rate, noop_rate = agg(job), agg(noop)
    per_round = [round(j["rate"] / n["rate"], 3) for j, n in zip(job, noop, strict=False) if n["rate"]]
    failures = sum(p["failed"] for p in result["phases"])
    return {
        "job_path_rate": round(job_rate, 1),
        "job_path_rate_per_round": [p["rate"] for p in job],
        "noop_rate": round(noop_rate, 1),
        "noop_rate_per_round": [p["rate"] for p in noop],
        "ratio": round(job_rate / noop_rate, 3) if noop_rate else None,
        "ratio_per_round": per_round,
        "throughput_met": job_rate >= target_rate and not any(p["failed"] for p in job),
        "slow_elapsed_s": round(slow["elapsed_s"], 2),
        "slow_met": slow["ok"] == slow["jobs"] and 0 < slow["elapsed_s"] < slow_target,
        "failures": failures,
        "job_worker_cpu_ms_per_job": _per_job(job, "worker"),
        "noop_worker_cpu_ms_per_job": _per_job(noop, "worker"),
        "job_services_cpu_ms_per_job": _per_job(job, "services"),
        # Cores used by unrelated processes during the timed phases: the noise on a shared machine.
        "other_cores_max": max(
            (_cores(p["cpu_s"], p["observed_s"])[3] for p in timed if p["cpu_s"] and p["observed_s"]),
            default=None,
        ),
    }


def _per_job(ps: list[dict[str, Any]], key: str) -> float | None:
    cpu = [p["cpu_s"].get(key) for p in ps]
    if not ps or any(c is None for c in cpu):
        return None
    ok = sum(p["ok"] for p in ps)
    return round(sum(c for c in cpu if c is not None) * 1000 / ok, 3) if ok else None


def _cores(cpu: dict[str, float], secs: float) -> tuple[float, float, float, float]:
    """Average cores busy: worker, PG+Redis, this driver, and everything else on the machine (noise)."""
    other = cpu["machine"] - cpu["worker"] - cpu["services"] - cpu["driver"]
    return (cpu["worker"] / secs, cpu["services"] / secs, cpu["driver"] / secs, max(0.0, other) / secs)


def _counts(by_status: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) or "none"


def markdown(result: dict[str, Any], s: dict[str, Any], target_rate: float, slow_target: float) -> str:
    def f(value: Any, fmt: str = ".2f") -> str:
        return "-" if value is None else format(value, fmt)

    lines = [
        "| round | path | jobs | ok | failed | retried | enqueue s | done after s | jobs/s "
        "| worker CPU ms/job (system) | Redis cmds/job | cores: worker / PG+Redis / driver / other "
        "| max worker DB conns (busy) |",
        "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|",
    ]
    for p in result["phases"]:
        cpu, secs, ok = p["cpu_s"], p["observed_s"], p["ok"]
        ms = (
            f"{cpu['worker'] * 1000 / ok:.2f} ({cpu['worker_system'] * 1000 / ok:.2f})" if cpu and ok else "-"
        )
        cores = " / ".join(f(c, ".2f") for c in _cores(cpu, secs)) if cpu and secs else "-"
        cmds = sum(p["redis_calls"].values()) / p["jobs"] if p["redis_calls"] else None
        lines.append(
            f"| {'warm-up' if p['round'] == 0 else p['round']} | {p['kind']} | {p['jobs']} | {ok} "
            f"| {p['failed']} | {p['retried']} | {p['enqueue_s']:.2f} | {p['elapsed_s']:.2f} | {p['rate']:.0f} "
            f"| {ms} | {f(cmds, '.1f')} | {cores} "
            f"| {f(p['max_worker_connections'], 'd')} ({f(p['max_worker_connections_busy'], 'd')}) |"
        )
    slow = next(p for p in result["phases"] if p["kind"] == "slow model")
    n = slow["notes"]
    lines += [
        "",
        "| measure | value | target | |",
        "|---|--:|--:|---|",
        f"| outbox → arq → job, jobs/s (all rounds) | {s['job_path_rate']:.0f} | ≥ {target_rate:g} "
        f"| {'met' if s['throughput_met'] else 'MISSED'} |",
        f"| no-op arq job, jobs/s (all rounds) | {s['noop_rate']:.0f} | | baseline |",
        f"| job path ÷ no-op | {f(s['ratio'])} (per round {', '.join(f(x) for x in s['ratio_per_round'])}) | | |",
        f"| worker CPU per job: job path / no-op, ms | {f(s['job_worker_cpu_ms_per_job'])} "
        f"/ {f(s['noop_worker_cpu_ms_per_job'])} | | |",
        f"| {slow['jobs']} enrichments x {result['plan']['slow_latency']:g} s model: all stored after, s "
        f"| {slow['elapsed_s']:.2f} | < {slow_target:g} | {'met' if s['slow_met'] else 'MISSED'} |",
        f"| … first / last model call started after, s | {f(n.get('first_started_after_s'))} "
        f"/ {f(n.get('all_started_after_s'))} | | |",
        f"| … first / last model call returned after, s | {f(n.get('first_returned_after_s'))} "
        f"/ {f(n.get('last_returned_after_s'))} | | |",
        f"| … model calls in flight at once (max) | {f(n.get('assessor_max_inflight'), 'd')} | | |",
        f"| … worker DB connections, max (busy) over the run | {f(slow['max_worker_connections'], 'd')} "
        f"({f(slow['max_worker_connections_busy'], 'd')}) "
        f"| ≤ {result['settings']['db_pool_size'] + result['settings']['db_max_overflow']} (pool) | |",
        f"| … worker DB connections while all calls slept, max (busy, idle in tx) "
        f"| {f(n.get('max_conns_while_all_asleep'), 'd')} ({f(n.get('max_busy_conns_while_all_asleep'), 'd')}, "
        f"{f(n.get('max_idle_in_tx_while_all_asleep'), 'd')}) | busy 0 | |",
        f"| failures (all phases, warm-up included) | {s['failures']} | 0 | |",
        f"| jobs per batched statement, throughput worker (whole run) | {_per_batch(result)} | | |",
        f"| at the end: outbox rows by status / handoffs by assessment | "
        f"{_counts(result['final_state']['outbox_by_status'])} / "
        f"{_counts(result['final_state']['handoffs_by_assessment_status'])} | all done / ready "
        f"| {'ok' if result['final_state']['all_done'] else 'FAILED'} |",
    ]
    if (s["other_cores_max"] or 0.0) > 0.25:
        lines += [
            "",
            f"Note: other processes used up to {s['other_cores_max']:.2f} cores during the timed phases; "
            "jobs/s are noisy, worker CPU ms/job much less so.",
        ]
    return "\n".join(lines)


def _per_batch(result: dict[str, Any]) -> str:
    batching = result.get("throughput_worker", {}).get("batching", {})
    parts = [
        f"{name.rsplit('.', 1)[-1]} {b['items'] / b['batches']:.1f}"
        for name, b in sorted(batching.items())
        if b.get("batches")
    ]
    return ", ".join(parts) or "-"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="smoke run: 1 round of 300 jobs, 100 x 5 s slow jobs")
    p.add_argument("--jobs", type=int, help="jobs per throughput run (default 2000; --quick 300)")
    p.add_argument("--rounds", type=int, help="ABBA rounds (default 3; --quick 1)")
    p.add_argument("--warmup", type=int, help="warm-up jobs per path (default 300; --quick 100)")
    p.add_argument("--slow-jobs", type=int, help="slow enrichments (default 500; --quick 100)")
    p.add_argument("--slow-latency", type=float, help="seconds per slow model call (default 20; --quick 5)")
    p.add_argument(
        "--slow-target", type=float, help="seconds allowed for all slow ones (default 30; --quick 15)"
    )
    p.add_argument("--target", type=float, default=300.0, help="required jobs/s through the job path")
    p.add_argument(
        "--chunk", type=int, default=500, help="outbox ids per OutboxRelay.dispatch call (default 500)"
    )
    p.add_argument("--messages", type=int, default=6, help="transcript length of each escalation (default 6)")
    p.add_argument(
        "--in-process", action="store_true", help="run the worker on this process's event loop instead"
    )
    p.add_argument(
        "--quiet-worker", action="store_true", help="worker logs at WARNING instead of INFO (as the CLI does)"
    )
    p.add_argument("--json", type=Path, help="write results here (default bench/out/jobs-<time>.json)")
    p.add_argument("--no-json", action="store_true", help="do not write a JSON file")
    p.add_argument("--keep-data", action="store_true", help="keep the temporary data dir (worker logs)")
    # The worker process this file starts for itself.
    p.add_argument("--worker-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--latency", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--stats", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker_child:
        return worker_child(args.latency, args.stats, args.quiet_worker)

    from handoffs.config import Settings

    plan = Plan(
        jobs=args.jobs or (300 if args.quick else 2000),
        rounds=args.rounds or (1 if args.quick else 3),
        warmup=args.warmup or (100 if args.quick else 300),
        slow_jobs=args.slow_jobs or (100 if args.quick else 500),
        slow_latency=args.slow_latency or (5.0 if args.quick else 20.0),
        messages=args.messages,
        chunk=args.chunk,
        in_process=args.in_process,
        quiet_worker=args.quiet_worker,
    )
    slow_target = args.slow_target or (15.0 if args.quick else 30.0)
    git = git_state()
    with start_stack("handoffs-bench-jobs-", args.keep_data) as stack:
        env = stack.env(pythonpath=True)
        # The same environment the worker process reads: one source of settings for both.
        os.environ.update(env)
        settings = Settings.from_env()
        owner = migrate_and_seed(settings, "jane@acme.test")
        print(f"{stack.describe()}; data dir {stack.data_dir}", flush=True)
        # This process's own logs (and, with --in-process, the worker's) go to a file, at INFO as the CLI.
        logging.basicConfig(
            level=logging.INFO, format=LOG_FORMAT, filename=str(stack.data_dir / "driver.log"), force=True
        )
        result = asyncio.run(benchmark(settings, owner, stack.svc, env, stack.data_dir, plan))

    summary = summarise(result, args.target, slow_target)
    result["summary"] = summary
    result["machine"] = machine()
    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["command"] = command_line("jobs", argv)
    result["git"] = git  # as the run began
    m = result["machine"]
    print(
        f"\n{m.get('cpu', '?')}, nproc={m['nproc']}, Python {m['python']}; worker: {result['worker_mode']}\n"
    )
    print(markdown(result, summary, args.target, slow_target))
    if not args.no_json:
        write_json(result, args.json, "jobs")
    return 0 if summary["failures"] == 0 and result["final_state"]["all_done"] else 1


if __name__ == "__main__":
    sys.exit(main())
