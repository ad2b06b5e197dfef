"""The arq worker: its functions, cron sweep, and the clients it shares with every job."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import uvloop
from anthropic import AsyncAnthropic
from arq import Worker, cron
from prometheus_client import start_http_server
from redis.exceptions import RedisError
from structlog.contextvars import bind_contextvars

from handoffs.config import Settings
from handoffs.enums import JobTopic
from handoffs.integrations.ai import AnthropicAssessor, Assessor, OfflineAssessor
from handoffs.jobs.chat import post_to_chat
from handoffs.jobs.context import CTX_KEY, JobContext, job_context
from handoffs.jobs.email import send_escalation_emails, send_resolution_email
from handoffs.jobs.enrichment import enrich_escalation
from handoffs.jobs.ladder import LadderSweeper
from handoffs.jobs.psa import push_to_psa
from handoffs.jobs.queue import arq_redis
from handoffs.runtime import open_runtime

log = logging.getLogger(__name__)

FUNCTIONS = [enrich_escalation, send_escalation_emails, push_to_psa, send_resolution_email, post_to_chat]
# arq runs a job by its function's name, and the outbox names jobs by JobTopic: one list.
if sorted(f.__name__ for f in FUNCTIONS) != sorted(JobTopic):
    raise RuntimeError(
        f"job functions {[f.__name__ for f in FUNCTIONS]} do not match JobTopic {list(JobTopic)}"
    )


def make_assessor(settings: Settings) -> Assessor:
    if not settings.anthropic_api_key:
        log.warning("ANTHROPIC_API_KEY is not set: assessments come from the offline assessor")
        return OfflineAssessor()
    client = AsyncAnthropic(
        api_key=settings.anthropic_api_key,
        base_url=settings.anthropic_base_url,
        timeout=settings.anthropic_timeout_seconds,
        max_retries=0,  # retries are the job's: attempt-based, with backoff, recorded
    )
    return AnthropicAssessor(client, settings.anthropic_model, streaming=settings.anthropic_streaming)


async def sweep_outbox(ctx: dict[str, Any]) -> int:
    """Dispatch outbox rows that a crashed process left behind."""
    return await job_context(ctx).relay.sweep()


def worker_options(settings: Settings, *, extra_ctx: dict[str, Any] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``arq.Worker`` (and the attributes of ``WorkerSettings``).

    ``extra_ctx`` pre-fills job-context parts (an assessor, an HTTP client),
    which ``on_startup`` then leaves alone: tests swap transports this way.
    """
    overrides = dict(extra_ctx or {})

    async def on_startup(ctx: dict[str, Any]) -> None:
        # arq's own Redis pool: the runtime uses it and leaves closing it to arq.
        runtime = await open_runtime(settings, role="worker", redis=ctx["redis"])
        ctx[CTX_KEY] = JobContext(
            settings=settings,
            runtime=runtime,
            engine=runtime.engine,
            sessionmaker=runtime.sessionmaker,
            bus=runtime.bus,
            relay=runtime.relay,
            assessor=overrides.get("assessor") or make_assessor(settings),
            # PSA and chat addresses come from accounts' admins: every connection is checked.
            http=overrides.get("http")
            or settings.outbound_policy().client(timeout=httpx.Timeout(30.0, connect=10.0)),
        )
        sweeper = ctx["ladder"] = LadderSweeper(ctx[CTX_KEY], settings.ladder_sweep_seconds)
        sweeper.start()
        if settings.worker_metrics_port:
            # Jobs, outcomes, tokens, batching, deliveries: this process's registry, for a scraper
            # on the private network (no token: bind it where only the scraper reaches).
            ctx["metrics_server"], _ = start_http_server(
                settings.worker_metrics_port, addr=settings.worker_metrics_host
            )
            log.info("worker metrics on %s:%d", settings.worker_metrics_host, settings.worker_metrics_port)

    async def on_job_start(ctx: dict[str, Any]) -> None:
        # arq runs each job in a task of its own, and the job's function in a task made after
        # this: arq's lines of the job and ours carry its id (LOG_FORMAT=json), and no other's.
        bind_contextvars(job_id=ctx["job_id"])

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        jc: JobContext | None = ctx.get(CTX_KEY)
        if jc is None:
            return
        if (sweeper := ctx.get("ladder")) is not None:
            await sweeper.stop()
        if (server := ctx.pop("metrics_server", None)) is not None:
            server.shutdown()
            server.server_close()
        await jc.drain()
        if "http" not in overrides:
            await jc.http.aclose()
        await jc.runtime.close()

    return {
        "functions": FUNCTIONS,
        "cron_jobs": [
            # unique: one worker of the fleet runs each tick.
            # No timeout of its own: arq derives its crash-recovery delay from the largest one.
            # Each sweep's result (rows it handed on) is kept a minute: a trace of the recent
            # sweeps in Redis, which the crash tests count instead of sleeping.
            cron(sweep_outbox, second=set(range(0, 60, 3)), run_at_startup=True, unique=True, keep_result=60),
        ],
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "on_job_start": on_job_start,
        # Our client rather than arq's RedisSettings: arq's own Sentinel support neither retries nor
        # follows a master that moves while its connections stay up (handoffs.redis_clients).
        # Not connected until the worker starts; arq closes it when the worker stops.
        "redis_pool": arq_redis(settings),
        "max_jobs": settings.worker_max_jobs,
        "poll_delay": settings.worker_poll_seconds,
        "job_timeout": settings.job_timeout_seconds,
        # Our runner gives up (and records why) at job_max_attempts; arq's cap is only a backstop.
        "max_tries": settings.job_max_attempts + 1,
        "keep_result": 3600,
        "health_check_interval": 10,
    }


class SteadyWorker(Worker):
    """arq's Worker, but a Redis error while it polls is waited out instead of ending the process.

    Commands already retry a lost connection (handoffs.redis_clients); arq's job start watches
    keys, and redis-py never retries under a WATCH: the connection a failover drops there
    raises, and arq would let that end its main loop. What the poll was doing is safe to do
    again: the job's start is a transaction that did not run, so it stays queued.
    """

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisError, OSError) as exc:
            log.warning(
                "the worker lost Redis while polling (%s: %s); polling again", type(exc).__name__, exc
            )
            await asyncio.sleep(1)


def run_worker(options: dict[str, Any]) -> Worker:
    """What ``handoffs worker`` runs, until SIGINT/SIGTERM: arq's ``Worker`` (steadied) on uvloop.

    uvloop: measured 10-20% less CPU per job than the default loop (bench/README.md).
    arq takes the current event loop when the ``Worker`` is built, so set it first.
    """
    asyncio.set_event_loop(uvloop.new_event_loop())
    worker = SteadyWorker(**options)
    worker.run()
    return worker
