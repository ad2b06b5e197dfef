"""Running the real arq worker in tests: in-process in burst mode, or as a separate process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from arq import Worker
from arq.connections import ArqRedis
from redis.asyncio import Redis

from handoffs.config import Settings
from handoffs.jobs.context import CTX_KEY, JobContext
from handoffs.jobs.worker import worker_options
from tests.support.replicas import ROOT, replica_env

#: Quick retries and a short job timeout, so retry and crash paths finish in seconds.
FAST = {"job_retry_base_seconds": 0.05, "job_retry_cap_seconds": 0.2, "job_timeout_seconds": 2}


def fast_settings(settings: Settings, **changes: Any) -> Settings:
    return replace(settings, **{**FAST, **changes})


async def run_jobs(
    settings: Settings, *, extra_ctx: dict[str, Any] | None = None, seconds: float = 30
) -> Worker:
    """Run queued jobs (and their retries) with a real arq Worker until the queue is empty.

    Neither the outbox sweep nor the ladder's runs here: they have their own tests, which
    drive them explicitly (``step_up_due(jc, now=...)``) or run real worker processes.
    """
    options = worker_options(replace(settings, ladder_sweep_seconds=0), extra_ctx=extra_ctx)
    options["cron_jobs"] = []  # the sweep has its own tests
    options["poll_delay"] = 0.02
    worker = Worker(**options, burst=True, handle_signals=False)
    try:
        await asyncio.wait_for(worker.main(), seconds)
    finally:
        await worker.close()
    return worker


@asynccontextmanager
async def job_context(
    settings: Settings, redis: Redis, *, extra_ctx: dict[str, Any] | None = None
) -> AsyncIterator[JobContext]:
    """The clients a worker gives its jobs, made and closed by its real start-up and shutdown hooks
    (without the ladder's own sweeper: a test that uses the context sweeps when it means to)."""
    options = worker_options(replace(settings, ladder_sweep_seconds=0), extra_ctx=extra_ctx)
    ctx: dict[str, Any] = {"redis": ArqRedis(connection_pool=redis.connection_pool)}
    await options["on_startup"](ctx)
    try:
        yield ctx[CTX_KEY]
    finally:
        await options["on_shutdown"](ctx)


def start_worker_process(settings: Settings, log_path: str, **env: str) -> subprocess.Popen[bytes]:
    """`handoffs worker` as its own process (for crash tests)."""
    environment = replica_env(
        settings,
        JOB_RETRY_BASE_SECONDS=str(FAST["job_retry_base_seconds"]),
        JOB_RETRY_CAP_SECONDS=str(FAST["job_retry_cap_seconds"]),
        JOB_TIMEOUT_SECONDS=str(FAST["job_timeout_seconds"]),
        **env,
    )
    with open(log_path, "wb") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "handoffs.cli", "worker"],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=log,
        )
