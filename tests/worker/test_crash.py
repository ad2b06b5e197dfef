"""Crash safety with real processes: a killed API before dispatch, a killed worker mid-job."""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.config import Settings
from handoffs.db.models import OutboxMessage, SessionHandoff
from handoffs.enums import AssessmentStatus, OutboxStatus
from tests.conftest import Api, settle
from tests.support.fake_anthropic import HangingMessagesServer
from tests.support.polling import wait_for
from tests.support.replicas import log_dir, run_replica_processes
from tests.support.smtp_server import smtp_server
from tests.support.workers import start_worker_process

pytestmark = [pytest.mark.usefixtures("clean_redis"), pytest.mark.slow]
SENIORS = ["ada@acme.test", "olivia@acme.test", "sam@acme.test"]


async def _assessment(db: AsyncSession, handoff_id: str) -> SessionHandoff | None:
    db.expire_all()
    row = await db.scalar(select(SessionHandoff).where(SessionHandoff.id == handoff_id))
    return row if row is not None and row.assessment_status == AssessmentStatus.ready else None


async def test_api_killed_after_commit_before_dispatch_is_swept_and_mails_once(
    api: Api, settings: Settings, db: AsyncSession, redis: Redis
) -> None:
    # OUTBOX_FAST_PATH=0 makes the replica commit and never dispatch: exactly
    # the state a crash between commit and dispatch leaves behind.
    with (
        run_replica_processes(settings, count=1, OUTBOX_FAST_PATH="0") as (replica,),
        smtp_server() as (inbox, smtp),
    ):
        async with httpx.AsyncClient(base_url=replica.url, headers=api["jane"].headers) as http:
            session = (
                await http.post("/api/v1/ai-sessions", json={"problem_summary": "Printer offline"})
            ).json()
            created = await http.post(
                f"/api/v1/ai-sessions/{session['id']}/handoff", json={"intent": "escalate"}
            )
            assert created.status_code == 201
            handoff = created.json()
        replica.kill()
        pending = (await db.scalars(select(OutboxMessage.status))).all()
        assert pending
        assert set(pending) == {OutboxStatus.pending}

        worker = start_worker_process(settings, str(log_dir() / "worker-sweep.log"), SMTP_URL=smtp)
        try:
            row = await wait_for(lambda: _assessment(db, handoff["id"]), seconds=30)
            assert row.ai_assessment["source"] == "offline"
            await wait_for(lambda: _count(inbox.messages, 3), seconds=15)
            swept = await _latest_sweeps(redis)
            await wait_for(lambda: _sweeps_after(redis, max(swept, default=0), 2), seconds=30)
            assert len(inbox.messages) == 3  # two more sweeps passed: nothing was sent again
        finally:
            worker.terminate()
            worker.wait(timeout=15)
    assert sorted(m["To"] for m in inbox.messages) == SENIORS


async def test_worker_killed_mid_job_runs_it_again_without_a_second_mail(
    api: Api, settings: Settings, db: AsyncSession
) -> None:
    hanging = HangingMessagesServer()
    with hanging.serve() as model, smtp_server() as (inbox, smtp):
        env = {"SMTP_URL": smtp, "ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": model.url}
        session = await api.new_session("jane", problem_summary="VPN drops")
        handoff = await api.hand_off(session["id"])
        await settle(api.client)

        first = start_worker_process(settings, str(log_dir() / "worker-killed.log"), **env)
        try:
            assert await wait_for(lambda: _flag(model.first_call_started.is_set()), seconds=30)
            await wait_for(lambda: _count(inbox.messages, 3), seconds=15)
        finally:
            first.kill()  # mid-job: the model call is in flight
            first.wait(timeout=10)
        assert await _assessment(db, handoff["id"]) is None

        second = start_worker_process(settings, str(log_dir() / "worker-second.log"), **env)
        try:
            # arq re-runs the lost job once its in-progress mark expires (job timeout + 10 s).
            row = await wait_for(lambda: _assessment(db, handoff["id"]), seconds=40)
            assert row.ai_assessment["source"] == "anthropic"
        finally:
            second.terminate()
            second.wait(timeout=15)
    assert model.requests == 2
    assert sorted(m["To"] for m in inbox.messages) == SENIORS


async def _count(items: list[object], expected: int) -> bool:
    assert len(items) <= expected, f"more than {expected}: {len(items)}"
    return len(items) == expected


async def _flag(value: bool) -> bool:
    return value


async def _latest_sweeps(redis: Redis) -> list[int]:
    """When recent outbox sweeps were due (ms): each keeps its result a minute (jobs/worker.py),
    under a job id that ends in that time."""
    keys = [key async for key in redis.scan_iter(match="arq:result:cron:sweep_outbox:*")]
    return [int(key.rsplit(b":", 1)[-1]) for key in keys]


async def _sweeps_after(redis: Redis, since_ms: int, count: int) -> bool:
    return len([t for t in await _latest_sweeps(redis) if t > since_ms]) >= count
