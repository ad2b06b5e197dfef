"""`arq worker.WorkerSettings`, the documented alternative to `handoffs worker`, runs the same jobs."""

from __future__ import annotations

import asyncio
import sys

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.config import Settings
from handoffs.db.models import OutboxMessage, SessionHandoff
from handoffs.enums import OutboxStatus
from tests.conftest import Api, settle
from tests.support.replicas import ROOT, replica_env

pytestmark = pytest.mark.usefixtures("clean_redis")


@pytest.mark.slow
async def test_arq_worker_settings_run_the_escalation_jobs(
    api: Api, db: AsyncSession, settings: Settings
) -> None:
    session = await api.new_session("jane", psa_ticket_id="12345")
    handoff = await api.hand_off(session["id"])
    await settle(api.client)

    # arq's own command line (`arq worker.WorkerSettings`), from this interpreter's environment.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "arq",
        "worker.WorkerSettings",
        "--burst",
        cwd=ROOT,
        env=replica_env(settings, ANTHROPIC_API_KEY="", SMTP_URL=""),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()

    row = await db.scalar(select(SessionHandoff).where(SessionHandoff.id == handoff["id"]))
    assert row is not None
    assert row.assessment_status == "ready"
    statuses = {
        r.topic: r.status
        for r in await db.scalars(select(OutboxMessage).where(OutboxMessage.topic != "event"))
    }
    assert statuses == {
        "enrich_escalation": OutboxStatus.done,
        "send_escalation_emails": OutboxStatus.done,
        "push_to_psa": OutboxStatus.done,
        "post_to_chat": OutboxStatus.done,  # no chat set up: done with nothing to post
    }
